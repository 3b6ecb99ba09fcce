//go:build cgo && linux

package main

// A binary linked by the system's linker (cgo, as Arch's packaging
// guidelines build it) starts at the C library's entry, which ignores
// -E=main.lockmgrEntry. There a constructor records what lockmgrEntry
// would (sigentry.go; the model is in signals.go) before the Go runtime
// starts: the C library runs constructors before it calls main, which is
// where the Go runtime begins.

/*
#include <signal.h>
#include <stdint.h>
#include <string.h>

static uint64_t lockmgr_handlers[65];
static uint64_t lockmgr_mask;
static int lockmgr_recorded;

__attribute__((constructor)) static void lockmgr_record_signals(void) {
	struct sigaction sa;
	sigset_t set;
	for (int s = 1; s < 65; s++) {
		if (sigaction(s, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
			lockmgr_handlers[s] = 1;
		}
	}
	if (sigprocmask(SIG_BLOCK, NULL, &set) == 0) {
		memcpy(&lockmgr_mask, &set, sizeof lockmgr_mask);
	}
	lockmgr_recorded = 1;
}

static uint64_t lockmgr_handler(int s) { return lockmgr_handlers[s]; }
static uint64_t lockmgr_recorded_mask(void) { return lockmgr_mask; }
static int lockmgr_was_recorded(void) { return lockmgr_recorded; }
*/
import "C"

func init() {
	if entryRan == 1 || C.lockmgr_was_recorded() == 0 {
		return
	}
	for s := 1; s < len(entryHandlers); s++ {
		entryHandlers[s] = uint64(C.lockmgr_handler(C.int(s)))
	}
	entryMask = uint64(C.lockmgr_recorded_mask())
	entryRan = 1
}
