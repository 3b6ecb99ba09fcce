// Closeother shows which locks survive when the process that holds them
// closes another descriptor of the locked file: POSIX locks do not.
//
//	go run ./examples/research/closeother -kind posix
//
// A POSIX record lock belongs to the process and the inode, not to the
// descriptor it was taken through, and fcntl(2) releases all of the
// process's locks on the file when any descriptor of it is closed. So a
// library that merely opens and closes the file (to read a setting, to
// check a checksum) silently unlocks it. flock(2) and OFD locks belong to
// an open file description, and only its own last close releases them.
//
// The program takes a write lock through descriptor A, asks another
// process for the lock, opens the file again as descriptor B and closes
// B, and asks again. It prints what it saw, then what that shows.
package main

import (
	"fmt"
	"os"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	e := lockkind.Begin("closeother", lockkind.POSIX)
	defer e.End()
	k, path := e.Kind, e.Path

	a := e.Open()
	defer a.Close()
	if err := k.Lock(int(a.Fd()), lockkind.Write, lockkind.Range{}, false); err != nil {
		e.Fail(err)
	}
	fmt.Printf("%s: took a write lock through descriptor A\n", k)
	before := lockkind.Probe(path, k, lockkind.Write, lockkind.Range{})
	fmt.Printf("%s: another process asks for it: %s\n", k, before)

	b, err := os.Open(path)
	if err != nil {
		e.Fail(err)
	}
	b.Close()
	fmt.Printf("%s: opened the file again as descriptor B, and closed B\n", k)
	after := lockkind.Probe(path, k, lockkind.Write, lockkind.Range{})
	fmt.Printf("%s: another process asks for it: %s\n", k, after)

	switch {
	case before == "busy" && after == "granted":
		fmt.Printf("%s: closing B released the lock taken through A\n", k)
	case before == "busy" && after == "busy":
		fmt.Printf("%s: the lock taken through A survived closing B\n", k)
	default:
		fmt.Printf("%s: unexpected: the lock was not held to begin with\n", k)
	}
}
