/*
 * lockf takes a lock with lockf(3) on a whole file and holds it until
 * Enter, for two terminals, like setlk.c.
 *
 *	lockf [-n] PATH
 *
 * -n gives up at once (F_TLOCK), printing "busy" and exiting 1, instead of
 * waiting (F_LOCK). It prints "locked", "waiting" first if it has to wait,
 * and "released" when Enter (or the end of its input) lets it go.
 *
 * On Linux, glibc's lockf(3) is fcntl(2) F_SETLK/F_SETLKW on the bytes
 * from the current offset (here 0) for the given length (0: to the end of
 * the file, however long it grows). So a lockf lock is a POSIX record
 * lock: it conflicts with F_SETLK and F_OFD_SETLK locks, not with flock(2)
 * locks, and it is always exclusive: lockf(3) has no shared lock. (Python's
 * fcntl.lockf, despite its name, calls fcntl(2) directly and does offer
 * LOCK_SH.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int nowait = 0, opt, fd, c;

	while ((opt = getopt(argc, argv, "n")) != -1) {
		if (opt != 'n')
			goto usage;
		nowait = 1;
	}
	if (optind != argc - 1)
		goto usage;
	fd = open(argv[optind], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(argv[optind]);
		return 2;
	}
	if (lockf(fd, F_TLOCK, 0) < 0) {
		if (errno != EAGAIN && errno != EACCES) {
			perror("lockf: lockf(F_TLOCK)");
			return 2;
		}
		if (nowait) {
			puts("busy");
			return 1;
		}
		puts("waiting");
		fflush(stdout);
		while (lockf(fd, F_LOCK, 0) < 0) {
			if (errno != EINTR) {
				perror("lockf: lockf(F_LOCK)");
				return 2;
			}
		}
	}
	puts("locked");
	fflush(stdout);
	while ((c = getchar()) != EOF && c != '\n')
		;
	lockf(fd, F_ULOCK, 0);
	puts("released");
	return 0;

usage:
	fprintf(stderr, "usage: lockf [-n] PATH\n");
	return 2;
}
