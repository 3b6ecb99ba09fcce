package lockmgr_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	lockmgr "github.com/lockmgr/lockmgr/core"
	"github.com/lockmgr/lockmgr/core/pluginhost"
	"golang.org/x/sys/unix"
)

// TestMalformedDescriptorsEndThePlugin: a plugin that sends descriptors
// against the protocol (testdata/rogue: too many in one grant, none in a
// handed-over grant, one with a grant it keeps, a grant after its call was
// cancelled and answered) is killed at once: the Lock that met it fails,
// every descriptor it sent is closed (the files it locked are free once it
// is dead, which they would not be were a copy left in this process), and
// the lock it kept for another Handle is announced lost and released.
//
// Issue #20, on the gRPC session with a descriptor channel beside it:
// such descriptors stayed in the host after Unlock, Close and the
// plugin's exit, and their locks with them.
func TestMalformedDescriptorsEndThePlugin(t *testing.T) {
	dir := pluginBinaryDir(t, "testdata/rogue", "rogue")
	for _, mode := range []string{"too-many", "none", "undue", "after-cancel"} {
		t.Run(mode, func(t *testing.T) {
			host := pluginhost.New(pluginhost.Options{Dirs: []string{dir}})
			files := t.TempDir()
			keepPath := filepath.Join(files, "keep")
			keep := pluginHandle(t, keepPath, host, "rogue")
			if ok, err := keep.TryLock(); !ok || err != nil {
				t.Fatalf("TryLock on the lock the plugin keeps: %v, %v", ok, err)
			}
			if len(kernelHolders(t, keepPath)) == 0 {
				t.Fatal("the plugin says it keeps a lock that the kernel does not show")
			}

			path := filepath.Join(files, mode)
			sent := []string{path}
			ctx := context.Background()
			switch mode {
			case "too-many":
				sent = append(sent, path+".second")
			case "none":
				sent = nil
			case "after-cancel":
				sent = []string{path + ".locked"}
				if err := unix.Mkfifo(path, 0o600); err != nil {
					t.Fatal(err)
				}
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				// The plugin says into the FIFO that it waits: the cancel
				// meets a wait in progress.
				go func() {
					f, err := os.Open(path)
					if err != nil {
						return
					}
					defer f.Close()
					if _, err := bufio.NewReader(f).ReadString('\n'); err == nil {
						cancel()
					}
				}()
			}
			h := pluginHandle(t, path, host, "rogue")
			if err := h.Lock(ctx); err == nil {
				t.Fatal("a Lock answered against the protocol succeeded")
			} else {
				t.Logf("the Lock: %v", err)
			}

			select {
			case <-keep.Lost():
			case <-time.After(failureBound):
				t.Fatalf("the lock the plugin kept was not announced lost within %v of its protocol error", failureBound)
			}
			if err := keep.Unlock(); !errors.Is(err, lockmgr.ErrLost) {
				t.Errorf("Unlock of the kept lock: %v, want ErrLost", err)
			}
			waitReleased(t, keepPath, "the lock the plugin kept, once it broke the protocol")
			for _, p := range sent {
				waitReleased(t, p, "a file whose locked descriptor the plugin sent against the protocol")
			}
		})
	}
}
