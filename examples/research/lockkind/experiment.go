package lockkind

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// Experiment is what each research program starts from: the kind of lock
// its -kind flag names, and a fresh lock file in a scratch directory.
type Experiment struct {
	// Name is the program's name, which its error messages start with.
	Name string
	// Kind is the kind of lock the program is run with.
	Kind Kind
	// Dir is the scratch directory, for programs that need more files.
	Dir string
	// Path is the lock file in Dir, not yet created.
	Path string
}

// Begin parses the command line (with a -kind flag that defaults to def)
// and makes the scratch directory. Call End when done.
func Begin(name string, def Kind) *Experiment {
	kindFlag := flag.String("kind", string(def), "the kind of lock: flock, posix or ofd")
	flag.Parse()
	e := &Experiment{Name: name}
	k, err := ParseKind(*kindFlag)
	if err != nil {
		e.Fail(err)
	}
	e.Kind = k
	if e.Dir, err = os.MkdirTemp("", name+"-"); err != nil {
		e.Fail(err)
	}
	e.Path = filepath.Join(e.Dir, "lock")
	return e
}

// End removes the scratch directory.
func (e *Experiment) End() { os.RemoveAll(e.Dir) }

// Open opens the experiment's lock file, failing the program if it cannot.
func (e *Experiment) Open() *os.File {
	f, err := Open(e.Path)
	if err != nil {
		e.Fail(err)
	}
	return f
}

// Fail reports err on stderr, removes the scratch directory, and exits 1.
func (e *Experiment) Fail(err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", e.Name, err)
	e.End()
	os.Exit(1)
}
