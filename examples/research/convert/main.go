// Convert shows shared locks, and whether converting a held lock from
// read (shared) to write (exclusive) is atomic.
//
//	go run ./examples/research/convert -kind flock
//
// Two processes take read locks on one file; both are granted, since read
// locks admit each other. Then the first asks to convert its read lock to
// a write lock without waiting, which the other reader's lock refuses.
//
// fcntl(2) converts POSIX and OFD locks atomically: a refused conversion
// leaves the read lock as it was. flock(2) does not: "the existing lock is
// first removed, and then a new lock is established" (flock(2), NOTES).
// So a refused conversion leaves the caller with no lock at all, and it
// is not told. The program shows which by letting the other reader go and
// asking a third process for a write lock: if the first still held its
// read lock, the third would be refused.
package main

import (
	"fmt"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	e := lockkind.Begin("convert", lockkind.Flock)
	defer e.End()
	k, path := e.Kind, e.Path
	whole := lockkind.Range{}

	f := e.Open()
	defer f.Close()
	if err := k.Lock(int(f.Fd()), lockkind.Read, whole, false); err != nil {
		e.Fail(err)
	}
	fmt.Printf("%s: took a read lock\n", k)

	reader, err := lockkind.StartOther()
	if err != nil {
		e.Fail(err)
	}
	defer reader.Close()
	fmt.Printf("%s: another process takes a read lock too, and keeps it: %s\n", k, reader.Hold(path, k, lockkind.Read, whole, false))

	upgrade := lockkind.Result(k.Lock(int(f.Fd()), lockkind.Write, whole, false))
	fmt.Printf("%s: asked to convert ours to a write lock, without waiting: %s\n", k, upgrade)

	reader.Release(path)
	fmt.Printf("%s: the other process let go of its read lock\n", k)
	third := lockkind.Probe(path, k, lockkind.Write, whole)
	fmt.Printf("%s: a third process asks for a write lock: %s\n", k, third)

	switch {
	case upgrade == "busy" && third == "granted":
		fmt.Printf("%s: the refused conversion dropped our read lock: conversion is not atomic\n", k)
	case upgrade == "busy" && third == "busy":
		fmt.Printf("%s: the refused conversion kept our read lock: conversion is atomic\n", k)
	default:
		fmt.Printf("%s: unexpected\n", k)
	}
}
