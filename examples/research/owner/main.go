// Owner shows who owns a lock, by opening the locked file a second time
// in the same process and asking for the same lock through the second
// descriptor.
//
//	go run ./examples/research/owner -kind posix
//
// flock(2) and OFD locks belong to an open file description, and each
// open(2) makes a new one: the second open is a different owner, and is
// refused, even in the same process. A POSIX lock belongs to the process:
// the second descriptor is the same owner, and is granted the lock it
// already holds. That is why two threads, or two libraries, of one
// process cannot exclude each other with POSIX locks, and why lockmgr's
// posix backend keeps its own table of which handle holds what.
package main

import (
	"fmt"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	e := lockkind.Begin("owner", lockkind.POSIX)
	defer e.End()
	k := e.Kind
	whole := lockkind.Range{}

	a := e.Open()
	defer a.Close()
	if err := k.Lock(int(a.Fd()), lockkind.Write, whole, false); err != nil {
		e.Fail(err)
	}
	fmt.Printf("%s: took a write lock through descriptor A\n", k)

	b := e.Open()
	defer b.Close()
	second := lockkind.Result(k.Lock(int(b.Fd()), lockkind.Write, whole, false))
	fmt.Printf("%s: opened the file again as descriptor B, in the same process; a write lock through B: %s\n", k, second)

	switch second {
	case "busy":
		fmt.Printf("%s: the owner is the open file description: two opens exclude each other, even in one process\n", k)
	case "granted":
		fmt.Printf("%s: the owner is the process: its two descriptors do not exclude each other\n", k)
	default:
		fmt.Printf("%s: unexpected\n", k)
	}
}
