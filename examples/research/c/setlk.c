/*
 * setlk takes a POSIX record lock (fcntl F_SETLK) on a whole file and
 * holds it until Enter, for two terminals: run it in one, then in the
 * other, and watch the second wait for the first.
 *
 *	setlk [-r] [-n] PATH
 *
 * -r takes a read (shared) lock instead of a write lock; -n gives up at
 * once, printing "busy" and exiting 1, instead of waiting. It prints
 * "locked" when it holds the lock, "waiting" first if it has to wait,
 * and "released" when Enter (or the end of its input) lets it go.
 *
 * The lock belongs to this process: closing any descriptor of PATH here
 * would release it, and a child from fork(2) would not inherit it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setlk(int fd, int cmd, short type)
{
	/*
	 * Every member not named is zero: l_start 0 with l_len 0 is the whole
	 * file, however long it grows. F_SETLK ignores l_pid on input, but
	 * the same struct with F_OFD_SETLK would not (see ofd_setlk.c), and a
	 * struct with no stale members cannot surprise anyone.
	 */
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };

	return fcntl(fd, cmd, &fl);
}

int main(int argc, char **argv)
{
	short type = F_WRLCK;
	int nowait = 0, opt, fd, c;

	while ((opt = getopt(argc, argv, "rn")) != -1) {
		switch (opt) {
		case 'r': type = F_RDLCK; break;
		case 'n': nowait = 1; break;
		default: goto usage;
		}
	}
	if (optind != argc - 1)
		goto usage;
	fd = open(argv[optind], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(argv[optind]);
		return 2;
	}
	if (setlk(fd, F_SETLK, type) < 0) {
		if (errno != EAGAIN && errno != EACCES) {
			perror("setlk: fcntl(F_SETLK)");
			return 2;
		}
		if (nowait) {
			puts("busy");
			return 1;
		}
		puts("waiting");
		fflush(stdout);
		while (setlk(fd, F_SETLKW, type) < 0) {
			if (errno != EINTR) {
				/* EDEADLK: waiting would close a cycle of waiters. */
				perror("setlk: fcntl(F_SETLKW)");
				return 2;
			}
		}
	}
	puts("locked");
	fflush(stdout);
	while ((c = getchar()) != EOF && c != '\n')
		;
	setlk(fd, F_SETLK, F_UNLCK);
	puts("released");
	return 0;

usage:
	fprintf(stderr, "usage: setlk [-r] [-n] PATH\n");
	return 2;
}
