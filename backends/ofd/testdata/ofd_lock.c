/*
 * ofd_lock takes an open file description lock (F_OFD_SETLK) on a byte
 * range, as a program outside lockmgr would; interop_test.go compiles it.
 *
 *	ofd_lock PATH r|w START LEN hold|try
 *
 * It prints "locked" or "busy". With hold, it keeps the lock until its
 * stdin closes; with try, it exits at once (and so lets go).
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct flock fl;
	char buf[64];
	int fd;

	if (argc != 6 || (argv[2][0] != 'r' && argv[2][0] != 'w')) {
		fprintf(stderr, "usage: ofd_lock PATH r|w START LEN hold|try\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	/*
	 * Zero the whole struct, not just the fields set below: for the
	 * F_OFD_* commands the kernel insists that l_pid be 0 and refuses the
	 * request with EINVAL otherwise, and a struct flock on the stack
	 * holds whatever was there before.
	 */
	memset(&fl, 0, sizeof fl);
	fl.l_type = argv[2][0] == 'r' ? F_RDLCK : F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = strtoll(argv[3], NULL, 10);
	fl.l_len = strtoll(argv[4], NULL, 10);
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		if (errno == EAGAIN || errno == EACCES) {
			puts("busy");
			return 0;
		}
		perror("fcntl(F_OFD_SETLK)");
		return 2;
	}
	puts("locked");
	fflush(stdout);
	if (strcmp(argv[5], "hold") == 0)
		while (read(0, buf, sizeof buf) > 0)
			;
	return 0;
}
