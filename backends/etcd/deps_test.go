package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPluginLinksNoTOMLParser: the configuration's TOML is the host's to
// read; a plugin gets its settings as JSON. Linking the parser into the
// plugin (once for a redaction helper, once through the backend-name
// check) cost every plugin start its package initialisation and the
// binary its size.
func TestPluginLinksNoTOMLParser(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "toml") {
			t.Errorf("the etcd plugin links %s", pkg)
		}
	}
}
