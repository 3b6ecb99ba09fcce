package config_test

import (
	"fmt"

	"github.com/lockmgr/lockmgr/core/config"
)

// Parse reports a problem with the file and line it is on, ready to print.
func ExampleParse() {
	doc := []byte(`backend = "flock"

[[rules]]
path = "/mnt/nfs"
backend = "posix"
lock_file_mode = "0644"
`)
	_, err := config.Parse("/etc/lockmgr/config.toml", doc)
	fmt.Println(err)
	// Output:
	// /etc/lockmgr/config.toml:6: unknown key "rules[0].lock_file_mode"
}

// BackendFor applies the longest matching rule, and says which setting
// decided.
func ExampleConfig_BackendFor() {
	f, err := config.Parse("/etc/lockmgr/config.toml", []byte(`backend = "auto"

[[rules]]
path = "/mnt/nfs"
backend = "posix"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := &config.Config{
		Backend: f.Backend,
		Sources: map[string]config.Source{config.KeyBackend: {Kind: config.KindSystemFile, File: f.Name, Line: f.Lines[config.KeyBackend]}},
		Rules:   f.Rules,
	}
	isNetwork := func(path string) bool { return false } // no network file systems here
	for _, path := range []string{"/mnt/nfs/build.lock", "/mnt/nfsx/build.lock", "/var/lock/build.lock"} {
		name, src := cfg.BackendFor(path, isNetwork)
		fmt.Printf("%s: %s (from %s)\n", path, name, src)
	}
	// Output:
	// /mnt/nfs/build.lock: posix (from /etc/lockmgr/config.toml:3)
	// /mnt/nfsx/build.lock: flock (from system file /etc/lockmgr/config.toml:1)
	// /var/lock/build.lock: flock (from system file /etc/lockmgr/config.toml:1)
}
