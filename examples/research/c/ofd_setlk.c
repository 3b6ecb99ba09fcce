/*
 * ofd_setlk takes an open file description lock (fcntl F_OFD_SETLK, Linux
 * 3.15) on a whole file and holds it until Enter, for two terminals: run
 * it in one, then in the other, and watch the second wait for the first.
 *
 *	ofd_setlk [-r] [-n] [-p PID] PATH
 *
 * -r takes a read (shared) lock instead of a write lock; -n gives up at
 * once, printing "busy" and exiting 1, instead of waiting. It prints
 * "locked" when it holds the lock, "waiting" first if it has to wait,
 * and "released" when Enter (or the end of its input) lets it go.
 *
 * -p stores PID in l_pid, to show what the kernel does with a struct
 * flock that is not zeroed: it refuses the request with EINVAL.
 *
 * The lock belongs to the open file description made by open(2) below: a
 * child from fork(2) shares it, and closing some other descriptor of PATH
 * does not release it. It conflicts with POSIX locks (F_SETLK, lockf) on
 * the same bytes, but not with flock(2) locks.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int setlk(int fd, int cmd, short type, pid_t pid)
{
	/*
	 * Zero-initialised: every member not named is zero. That matters for
	 * l_pid above all. fcntl(2): for the F_OFD_* commands "l_pid must be
	 * set to zero", and the kernel refuses anything else with EINVAL. A
	 * struct flock declared on the stack and filled in member by member
	 * holds whatever was there before in the members left out, so such a
	 * program's OFD locks fail now and then, for no visible reason.
	 */
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };

	fl.l_pid = pid; /* 0 unless -p says otherwise */
	return fcntl(fd, cmd, &fl);
}

int main(int argc, char **argv)
{
	short type = F_WRLCK;
	pid_t pid = 0;
	int nowait = 0, opt, fd, c;

	while ((opt = getopt(argc, argv, "rnp:")) != -1) {
		switch (opt) {
		case 'r': type = F_RDLCK; break;
		case 'n': nowait = 1; break;
		case 'p': pid = (pid_t)atoi(optarg); break;
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
	if (setlk(fd, F_OFD_SETLK, type, pid) < 0) {
		if (errno != EAGAIN && errno != EACCES) {
			/* EINVAL: l_pid is not 0, or the kernel is older than 3.15. */
			perror("ofd_setlk: fcntl(F_OFD_SETLK)");
			return 2;
		}
		if (nowait) {
			puts("busy");
			return 1;
		}
		puts("waiting");
		fflush(stdout);
		/* No EDEADLK here: the kernel does not look for deadlocks among OFD locks. */
		while (setlk(fd, F_OFD_SETLKW, type, pid) < 0) {
			if (errno != EINTR) {
				perror("ofd_setlk: fcntl(F_OFD_SETLKW)");
				return 2;
			}
		}
	}
	puts("locked");
	fflush(stdout);
	while ((c = getchar()) != EOF && c != '\n')
		;
	setlk(fd, F_OFD_SETLK, F_UNLCK, 0);
	puts("released");
	return 0;

usage:
	fprintf(stderr, "usage: ofd_setlk [-r] [-n] [-p PID] PATH\n");
	return 2;
}
