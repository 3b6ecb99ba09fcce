package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pluginInternals are the packages that own the plugin process and the
// wire to it. cli must not import them.
var pluginInternals = []string{
	"github.com/lockmgr/lockmgr/core/pluginhost",
	"github.com/lockmgr/lockmgr/core/pluginrpc",
	"github.com/lockmgr/lockmgr/core/lockpb",
	"github.com/lockmgr/lockmgr/core/plugin",
}

// TestPluginsOnlyThroughTheLibrary holds cli to the library's API: it
// reaches backend plugins only through package lockmgr, as any program
// would, and never through the packages that own the plugin process and
// its wire. What cli needs of a plugin belongs in that API, where every
// program gets it and one owner keeps it true; a second way in is how
// two owners of one plugin process came about (issue #20). Every .go
// file counts, whatever its build tags, tests too.
func TestPluginsOnlyThroughTheLibrary(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if slices.Contains(pluginInternals, p) {
				t.Errorf("%s imports %s: reach plugins through package lockmgr (github.com/lockmgr/lockmgr/core), and add to its API what is missing", fset.Position(imp.Pos()), p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
