//go:build !cgo

#include "textflag.h"

// lockmgrEntry is lockmgr's ELF entry point when it is linked with
// -ldflags=-E=main.lockmgrEntry (signals.go says why). Before the Go
// runtime replaces them, it records the handler of every signal
// (rt_sigaction with no new action) in ·entryHandlers and the signal mask
// (rt_sigprocmask with no new mask) in ·entryMask, then starts the runtime
// at its usual entry. Only the stack pointer matters at an ELF entry, and
// it is left alone.
TEXT ·lockmgrEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$1, R12
next:
	MOVQ	$13, AX                 // SYS_rt_sigaction
	MOVQ	R12, DI                 // signal
	MOVQ	$0, SI                  // no new action
	LEAQ	·entryScratch(SB), DX   // the old one
	MOVQ	$8, R10                 // sizeof(sigset_t)
	SYSCALL
	MOVQ	·entryScratch(SB), BX   // sa_handler comes first
	LEAQ	·entryHandlers(SB), CX
	MOVQ	BX, (CX)(R12*8)
	INCQ	R12
	CMPQ	R12, $65
	JLT	next
	MOVQ	$14, AX                 // SYS_rt_sigprocmask
	MOVQ	$0, DI                  // SIG_BLOCK, with no set: a query
	MOVQ	$0, SI
	LEAQ	·entryMask(SB), DX
	MOVQ	$8, R10
	SYSCALL
	MOVQ	$1, ·entryRan(SB)
	JMP	_rt0_amd64_linux(SB)
