// Package flockcompat is util-linux flock(1)'s command line, as the flock
// personality of lockmgr speaks it: getopt_long's reading of the
// arguments (options up to the first operand, clustered short options,
// unique prefixes of long ones), flock(1)'s usage text, its messages and
// --verbose lines word for word, and the <sysexits.h> codes it exits
// with. Scripts written for flock(1) test all of these, so they live
// here together, apart from lockmgr's own command line, which may change
// its words freely.
//
// The package knows nothing of locks or backends: it reads a command
// line through the options lockmgr gives it (the ones `lockmgr run`
// shares, from one table) and speaks through a Voice. lockmgr's run flow
// does the work, and asks the Voice to say what flock(1) would have said.
package flockcompat

// Name is the name under which lockmgr is flock(1).
const Name = "flock"

// flock(1)'s exit codes, from <sysexits.h>, where they differ in meaning
// from lockmgr's own, or flock(1) alone uses them.
const (
	// ExitUsage (EX_USAGE) is a command line flock(1) refuses.
	ExitUsage = 64
	// ExitDataErr (EX_DATAERR) is the lock call itself failing.
	ExitDataErr = 65
	// ExitUnavailable (EX_UNAVAILABLE) is a command that cannot be run.
	ExitUnavailable = 69
	// ExitOSErr (EX_OSERR) is running out of descriptors, memory or locks.
	ExitOSErr = 71
	// ExitCantCreat (EX_CANTCREAT) is a read-only or full filesystem.
	ExitCantCreat = 73
)
