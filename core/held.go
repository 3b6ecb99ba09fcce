package lockmgr

import (
	"context"
	"errors"
	"os"
	"sync"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/fdlock"
	"github.com/lockmgr/lockmgr/core/pluginhost"
)

// heldLock is a lock a Handle holds, with everything that keeps it held
// and everything its release needs.
type heldLock struct {
	backend.Held
	mode Mode
	// granter is the backend instance that granted the lock, and the only
	// one its id means anything to: a plugin started after that one died
	// numbers its own locks, and must never be asked to release this one.
	granter backend.LockMgr
	// plugin, when the lock came through one, keeps that plugin and its
	// lifeline reachable for as long as the lock is held.
	plugin *pluginhost.Plugin
}

// holding is every lock the process's Handles hold. A lock lives until
// Unlock, Close, Detach or the process's exit, whatever the caller keeps
// of its Handle; were the Handle the only way to reach the lock, dropping
// it would let the garbage collector close a handed-over descriptor (by
// os.File's finalizer) or a private plugin's lifeline, and the kernel
// would release the lock without a word. So a lock enters here as it is
// granted (hold) and leaves only as it is let go (letGo, detach): nothing
// else can drop it.
var holding = struct {
	mu    sync.Mutex
	locks map[*heldLock]struct{}
}{locks: make(map[*heldLock]struct{})}

// hold enters a granted lock in the registry and returns it.
func hold(held backend.Held, mode Mode, granter backend.LockMgr, plugin *pluginhost.Plugin) *heldLock {
	l := &heldLock{Held: held, mode: mode, granter: granter, plugin: plugin}
	holding.mu.Lock()
	holding.locks[l] = struct{}{}
	holding.mu.Unlock()
	return l
}

func (l *heldLock) forget() {
	holding.mu.Lock()
	delete(holding.locks, l)
	holding.mu.Unlock()
}

// letGo releases l and removes it from the registry.
func (l *heldLock) letGo() error {
	err := giveBack(l.granter, l.Held)
	l.forget()
	return err
}

// detach removes l, a lock that is a locked file, from the registry and
// returns the file: from now on the lock lasts as long as the caller keeps
// that file open. It is the one way a locked file leaves the library, so
// it is here that the plugin's copy is waited out (backend.Held.WaitSole):
// the caller may give the file to a command, and the command's close must
// free the lock.
func (l *heldLock) detach() *os.File {
	if l.WaitSole != nil {
		l.WaitSole()
	}
	l.forget()
	return l.File
}

// giveBack releases held, which granter granted: a lock handed over as
// a locked file is released by unlocking and closing it, here, with no
// round trip; any
// other only by the backend instance that granted it, and then its
// keeper, if it has one, is closed (after the release: closed first, it
// would have the plugin release the lock itself, and ours would be
// answered "not locked").
func giveBack(granter backend.LockMgr, held backend.Held) error {
	if held.File != nil {
		// Unlocked before it is closed: the plugin that handed it over may
		// still hold a copy for a moment (fdlock.ReleaseDescription).
		uerr := fdlock.ReleaseDescription(held.File)
		return errors.Join(uerr, held.File.Close())
	}
	err := granter.Release(context.Background(), held.ID)
	if held.Keeper != nil {
		held.Keeper.Close()
	}
	return err
}
