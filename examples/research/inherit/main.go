// Inherit shows which locks a child process inherits across fork and
// exec: flock(2) and OFD locks do, POSIX locks do not.
//
//	go run ./examples/research/inherit -kind flock
//
// A child started with a copy of the locked descriptor shares its open
// file description. flock and OFD locks belong to that open file
// description, so the child holds the lock as much as the parent does:
// it survives the parent closing its own descriptor, and ends only when
// the last copy closes. A POSIX lock belongs to the process that took it;
// the child shares the descriptor but not the lock, and the lock ends
// with the parent's close.
//
// The program takes a write lock through descriptor A and starts a child
// (this program again) that inherits A as its descriptor 3. The child asks
// for the same lock on descriptor 3; the parent closes A; another process
// asks for the lock; the child closes descriptor 3; another process asks
// again.
package main

import (
	"fmt"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	e := lockkind.Begin("inherit", lockkind.Flock)
	defer e.End()
	k := e.Kind
	path := e.Path
	whole := lockkind.Range{}

	a := e.Open()
	if err := k.Lock(int(a.Fd()), lockkind.Write, whole, false); err != nil {
		e.Fail(err)
	}
	fmt.Printf("%s: took a write lock through descriptor A\n", k)

	// os/exec forks and execs; ExtraFiles[0] becomes the child's
	// descriptor 3, a copy of A sharing its open file description.
	child, err := lockkind.StartOther(a)
	if err != nil {
		e.Fail(err)
	}
	defer child.Close()
	fmt.Printf("%s: started a child process that inherits A as its descriptor 3\n", k)
	asked := child.HoldFD(3, k, lockkind.Write, whole)
	fmt.Printf("%s: the child asks for the same lock on its descriptor 3: %s\n", k, asked)

	a.Close()
	afterParent := lockkind.Probe(path, k, lockkind.Write, whole)
	fmt.Printf("%s: the parent closed A; another process asks for the lock: %s\n", k, afterParent)

	child.Release("3")
	afterChild := lockkind.Probe(path, k, lockkind.Write, whole)
	fmt.Printf("%s: the child closed its descriptor 3; another process asks for the lock: %s\n", k, afterChild)

	switch {
	case asked == "granted" && afterParent == "busy" && afterChild == "granted":
		fmt.Printf("%s: inherited: the child's copy of the descriptor kept the lock after the parent closed A\n", k)
	case asked == "busy" && afterParent == "granted" && afterChild == "granted":
		fmt.Printf("%s: not inherited: the lock was the parent's alone, and ended when it closed A\n", k)
	default:
		fmt.Printf("%s: unexpected\n", k)
	}
}
