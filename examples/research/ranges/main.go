// Ranges shows byte-range locks: two processes may lock different parts
// of one file at once, and only overlapping ranges conflict.
//
//	go run ./examples/research/ranges -kind ofd
//
// POSIX and OFD locks name a range in struct flock (l_start, and l_len,
// where 0 reaches the end of the file however long it grows). flock(2)
// takes no range at all: its lock is always the whole file, and lockmgr's
// flock backend refuses --start and --length for that reason.
package main

import (
	"errors"
	"fmt"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	e := lockkind.Begin("ranges", lockkind.OFD)
	defer e.End()
	k := e.Kind
	path := e.Path

	f := e.Open()
	defer f.Close()
	held := lockkind.Range{Start: 0, Len: 100}
	err := k.Lock(int(f.Fd()), lockkind.Write, held, false)
	if errors.Is(err, lockkind.ErrNoRanges) {
		whole := lockkind.Range{}
		fmt.Printf("%s: a write lock on %s: %v\n", k, held, err)
		if err := k.Lock(int(f.Fd()), lockkind.Write, whole, false); err != nil {
			e.Fail(err)
		}
		fmt.Printf("%s: took a write lock on %s instead\n", k, whole)
		fmt.Printf("%s: another process asks for %s: %s\n", k, whole, lockkind.Probe(path, k, lockkind.Write, whole))
		return
	}
	if err != nil {
		e.Fail(err)
	}
	fmt.Printf("%s: took a write lock on %s\n", k, held)
	for _, r := range []lockkind.Range{{Start: 100, Len: 100}, {Start: 50, Len: 100}} {
		fmt.Printf("%s: another process asks for %s: %s\n", k, r, lockkind.Probe(path, k, lockkind.Write, r))
	}
}
