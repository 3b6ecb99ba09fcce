// Layout prints the layout of struct flock as Go's
// golang.org/x/sys/unix.Flock_t gives it on this platform, as the seed's
// flock_sizes.c printed C's, so that the two can be compared line by line
// (../c/flock_layout.c prints the same lines from C).
//
//	go run ./examples/research/layout
//	GOARCH=386 go run ./examples/research/layout    # where 32-bit binaries run
//
// struct flock is not the same on every platform: off_t is 64 bits on
// 64-bit Linux and, for the fcntl64 call every modern 32-bit program uses,
// on 32-bit Linux too; but i386 aligns a 64-bit integer to 4 bytes and ARM
// to 8, so l_start moves and the size changes. A program that packs the
// struct by hand (Python's struct.pack, say) must get that right for each
// platform. x/sys/unix generates Flock_t from each platform's C headers,
// and its FcntlFlock calls fcntl64 where that is the call that matches, so
// Go code using them carries the right layout everywhere.
package main

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	var lk unix.Flock_t
	fmt.Printf("struct flock as golang.org/x/sys/unix.Flock_t, %s/%s\n", runtime.GOOS, runtime.GOARCH)
	fmt.Printf("size      %2d\n", unsafe.Sizeof(lk))
	for _, f := range []struct {
		name         string
		offset, size uintptr
	}{
		{"l_type", unsafe.Offsetof(lk.Type), unsafe.Sizeof(lk.Type)},
		{"l_whence", unsafe.Offsetof(lk.Whence), unsafe.Sizeof(lk.Whence)},
		{"l_start", unsafe.Offsetof(lk.Start), unsafe.Sizeof(lk.Start)},
		{"l_len", unsafe.Offsetof(lk.Len), unsafe.Sizeof(lk.Len)},
		{"l_pid", unsafe.Offsetof(lk.Pid), unsafe.Sizeof(lk.Pid)},
	} {
		fmt.Printf("%-9s offset %2d size %d\n", f.name, f.offset, f.size)
	}
}
