package flockcompat

import (
	"fmt"
	"io"
)

// Help prints the personality's usage, with flock(1)'s options, for the
// program called name.
func Help(w io.Writer, name string) {
	fmt.Fprintf(w, `
Usage:
 %[1]s [options] <file>|<directory> <command> [<argument>...]
 %[1]s [options] <file>|<directory> -c <command>
 %[1]s [options] <file descriptor number>

Take a lock for a shell script: lockmgr running as util-linux flock(1),
with the backend chosen by lockmgr's configuration.

Options:
 -s, --shared             take a shared lock
 -x, --exclusive          take an exclusive lock (the default)
 -u, --unlock             release a lock
 -n, --nonblock           fail at once rather than wait
 -w, --timeout <secs>     wait at most this long
 -E, --conflict-exit-code <number>  exit status for a conflict or timeout
 -o, --close              do not let the command inherit the lock
 -c, --command <command>  run one command line through the shell
 -F, --no-fork            run the command in place of %[1]s
     --fcntl              take an open file description lock (backend ofd)
     --start <offset>     first byte of the locked range (implies --fcntl)
     --length <number>    bytes in the locked range (implies --fcntl)
     --fd <number>        lock the caller's descriptor around the command
     --verbose            say how long the lock took, and what runs

 -h, --help               show this help
 -V, --version            show the version

See lockmgr's docs/cli.rst, "Coming from flock(1)".
`, name)
}
