package main

import (
	"testing"

	"github.com/lockmgr/lockmgr/cli/internal/prestart"
	"github.com/spf13/pflag"
)

// TestPrestartKnowsRunFlags holds the prestart's own reading of run's
// command line to the real flag set: a flag it does not know, or reads as
// taking a value when it takes none, would make it mistake a flag for the
// lock file (harmless, but the head start would be lost).
func TestPrestartKnowsRunFlags(t *testing.T) {
	root := newRootCmd()
	run, _, err := root.Find([]string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	check := func(f *pflag.Flag) {
		if f.Name == "help" {
			return // no prestart for help
		}
		seen[f.Name] = true
		takesValue := f.NoOptDefVal == "" && f.Value.Type() != "bool"
		got, known := prestart.RunFlags[f.Name]
		switch {
		case !known:
			t.Errorf("prestart.RunFlags lacks run's --%s", f.Name)
		case got != takesValue:
			t.Errorf("prestart.RunFlags[%q] = %v, want %v", f.Name, got, takesValue)
		}
		if f.Shorthand != "" && prestart.RunShorthands[f.Shorthand[0]] != f.Name {
			t.Errorf("prestart.RunShorthands[%q] = %q, want %q", f.Shorthand, prestart.RunShorthands[f.Shorthand[0]], f.Name)
		}
	}
	run.Flags().VisitAll(check)
	run.InheritedFlags().VisitAll(check)
	for name := range prestart.RunFlags {
		if !seen[name] {
			t.Errorf("prestart.RunFlags has --%s, which run does not", name)
		}
	}
}
