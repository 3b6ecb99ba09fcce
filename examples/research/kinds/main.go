// Kinds shows which kinds of lock conflict with which: this process
// holds a write lock of one kind on the whole file, and another process
// asks for a write lock of each kind.
//
//	go run ./examples/research/kinds
//	go run ./examples/research/kinds -dir /mnt/nfs/scratch   # on another filesystem
//
// On a local filesystem the kernel keeps two lists per inode: flock(2)
// locks in one, POSIX and OFD locks in the other. A request is checked
// against its own list only, so a flock lock and an fcntl lock never
// conflict, while POSIX and OFD locks conflict with each other as with
// themselves. On NFS, Linux emulates flock(2) with a whole-file fcntl lock
// on the server, and there flock and fcntl locks do conflict (flock(2),
// NOTES); -dir runs the same table on such a mount.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lockmgr/lockmgr/examples/research/lockkind"
)

func main() {
	dirFlag := flag.String("dir", "", "make the lock files in `DIR` (default: a new temporary directory)")
	flag.Parse()
	dir := *dirFlag
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "kinds-"); err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
	}
	whole := lockkind.Range{}

	row := func(cells ...string) {
		line := fmt.Sprintf("%-14s", cells[0])
		for _, c := range cells[1:] {
			line += fmt.Sprintf("%-9s", c)
		}
		fmt.Println(strings.TrimRight(line, " "))
	}
	row("held \\ asked", string(lockkind.Flock), string(lockkind.POSIX), string(lockkind.OFD))
	for _, held := range lockkind.Kinds {
		path := filepath.Join(dir, "kinds-"+string(held)+".lock")
		f, err := lockkind.Open(path)
		if err != nil {
			fail(err)
		}
		if err := held.Lock(int(f.Fd()), lockkind.Write, whole, false); err != nil {
			fail(fmt.Errorf("%s lock on %s: %w", held, path, err))
		}
		cells := []string{string(held)}
		for _, asked := range lockkind.Kinds {
			cells = append(cells, lockkind.Probe(path, asked, lockkind.Write, whole))
		}
		row(cells...)
		f.Close()
		os.Remove(path)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kinds:", err)
	os.Exit(1)
}
