/*
 * flock_layout prints the layout of struct flock as this C compiler and
 * <fcntl.h> give it, in the same lines as ../layout (Go's
 * golang.org/x/sys/unix.Flock_t), so that the two can be compared: they
 * must agree, member by member, or Go would hand the kernel a struct it
 * reads wrongly.
 *
 * Build it the way a program that uses OFD locks must be built: with a
 * 64-bit off_t. On 64-bit Linux off_t is 64 bits anyway; on 32-bit Linux
 * _FILE_OFFSET_BITS=64 makes struct flock the 64-bit struct and fcntl()
 * the fcntl64 call, which is the only call the kernel accepts F_OFD_*
 * through there.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>

#define MEMBER(m) \
	printf("%-9s offset %2zu size %zu\n", #m, offsetof(struct flock, m), sizeof(((struct flock *)0)->m))

int main(void)
{
	printf("struct flock as <fcntl.h> declares it, %s\n",
#if defined(__x86_64__)
	       "x86_64"
#elif defined(__aarch64__)
	       "aarch64"
#elif defined(__i386__)
	       "i386"
#elif defined(__arm__)
	       "arm"
#else
	       "this platform"
#endif
	);
	printf("size      %2zu\n", sizeof(struct flock));
	MEMBER(l_type);
	MEMBER(l_whence);
	MEMBER(l_start);
	MEMBER(l_len);
	MEMBER(l_pid);
	return 0;
}
