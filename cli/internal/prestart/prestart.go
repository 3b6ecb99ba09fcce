// Package prestart starts the backend plugin of `lockmgr run` from a
// package initializer, before the gRPC and protobuf packages of lockmgr
// itself have initialized.
//
// `lockmgr run FILE true` is two Go programs starting one after the
// other: lockmgr, whose package initialization (gRPC, protobuf,
// go-plugin) takes about 2 ms, and then its plugin, which has the same
// packages to initialize. Go initializes packages in the order of their
// import paths, each once its own imports are done, so this package,
// which imports only the standard library, the config parser and
// core/pluginproc, runs well before google.golang.org/grpc. Its
// initializer reads the command line and the configuration, predicts the
// plugin that `run` will start, and starts it (pluginproc.Prestart); the
// two start-ups then overlap on separate cores.
//
// A prediction is only ever a head start. The plugin host takes the
// process over only if it would have started exactly the same one (same
// binary, checksum, environment and lifeline sharing: pluginproc.Take);
// otherwise the process is discarded and a fresh one started. Anything
// this parser does not understand means no prestart at all.
package prestart

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"

	// Reserves -F's descriptor number before this package's initializer
	// starts the plugin and opens descriptors that could take it.
	_ "github.com/lockmgr/lockmgr/cli/internal/fdslot"
	"github.com/lockmgr/lockmgr/core/config"
	"github.com/lockmgr/lockmgr/core/lockfile"
	"github.com/lockmgr/lockmgr/core/pluginproc"
)

// EnvDisable turns the prestart off (LOCKMGR_PRESTART=0), for measuring
// what it saves and for ruling it out when something goes wrong.
const EnvDisable = "LOCKMGR_PRESTART"

func init() {
	if os.Getenv(EnvDisable) == "0" {
		return
	}
	predict := Predict
	if filepath.Base(os.Args[0]) == "flock" {
		// lockmgr's flock personality, with flock(1)'s command line.
		predict = PredictFlock
	}
	if spec, ok := predict(os.Args[1:]); ok {
		// An error here is the real start's to report, with context.
		_ = pluginproc.Prestart(spec)
	}
}

// RunFlags are the flags of `lockmgr run`, and the root's persistent
// ones, by long name: true for those that take a value. Short names map
// to long ones in RunShorthands. The cli's tests hold both to the real
// command's flag set, so that a new flag cannot be silently mistaken for
// the command to run.
var RunFlags = map[string]bool{
	"exclusive": false, "e": false, "shared": false, "nonblock": false,
	"verbose": false, "close": false,
	// flock(1)'s spellings.
	"nb": false, "nonblocking": false, "wait": true, "unlock": false,
	"no-fork": false, "fcntl": false, "version": false, "fd": true, "command": true,
	"timeout": true, "conflict-exit-code": true, "backend": true,
	"on-lost": true, "grace": true, "start": true, "length": true,
	"config": true,
}

// RunShorthands maps each short flag of `lockmgr run` to its long name.
var RunShorthands = map[byte]string{
	'x': "exclusive", 'e': "e", 's': "shared", 'n': "nonblock", 'v': "verbose",
	'o': "close", 'w': "timeout", 'E': "conflict-exit-code", 'b': "backend",
	'u': "unlock", 'F': "no-fork", 'V': "version", 'c': "command",
}

// runArgs is what the prediction needs from a `lockmgr run` command line.
type runArgs struct {
	file, backend, configFile string
	close                     bool
}

// Predict returns the Spec of the plugin that the command line args
// (without the program name) will start, if it is a `lockmgr run` whose
// flags it understands and whose configuration loads.
func Predict(args []string) (pluginproc.Spec, bool) {
	ra, ok := parse(args)
	if !ok {
		return pluginproc.Spec{}, false
	}
	return ra.predict()
}

// PredictFlock is Predict for the flock personality: args are flock(1)'s
// (without the program name), and only its FILE COMMAND form starts a
// plugin the way `lockmgr run` does.
func PredictFlock(args []string) (pluginproc.Spec, bool) {
	ra, ok := parseFlock(args)
	if !ok {
		return pluginproc.Spec{}, false
	}
	return ra.predict()
}

// flock(1)'s long options that take no value, and those whose value
// does not decide the plugin.
var (
	flockNoValue   = map[string]bool{"shared": true, "exclusive": true, "nonblocking": true, "nb": true, "close": true, "no-fork": true, "verbose": true, "fcntl": true}
	flockSkipValue = map[string]bool{"timeout": true, "wait": true, "conflict-exit-code": true, "start": true, "length": true}
)

// parseFlock reads flock(1)'s `[options] FILE COMMAND...` as the
// personality will: long options by their full names only, anything
// else (-u, -h, -V, --fd, -c as an option, an abbreviation) means no
// prediction.
func parseFlock(args []string) (runArgs, bool) {
	var ra runArgs
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if strings.HasPrefix(a, "--") {
			name, _, hasValue := strings.Cut(a[2:], "=")
			switch {
			case flockNoValue[name] && !hasValue:
				ra.close = ra.close || name == "close"
				if name == "fcntl" {
					ra.backend = "ofd"
				}
			case flockSkipValue[name]:
				if !hasValue {
					i++
				}
				if name == "start" || name == "length" {
					ra.backend = "ofd"
				}
			default:
				return ra, false
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			switch c := a[j]; {
			case strings.IndexByte("sexnoF", c) >= 0:
				ra.close = ra.close || c == 'o'
			case c == 'w' || c == 'E':
				if j == len(a)-1 {
					i++
				}
				j = len(a)
			default:
				return ra, false
			}
		}
	}
	if len(args)-i < 2 || args[i] == "" {
		return ra, false
	}
	ra.file = args[i]
	return ra, true
}

// predict is the Spec of the plugin a run with ra starts.
func (ra runArgs) predict() (pluginproc.Spec, bool) {
	cfg, err := config.Load(config.LoadOptions{ExplicitFile: ra.configFile, Backend: ra.backend})
	if err != nil {
		return pluginproc.Spec{}, false
	}
	file, err := filepath.Abs(ra.file)
	if err != nil {
		return pluginproc.Spec{}, false
	}
	name := cfg.Resolve(ra.backend, file, lockfile.PathOnNetworkFS)
	path, err := pluginproc.Find(name, pluginproc.SearchPath("", cfg.PluginDir))
	if err != nil || pluginproc.Verify(path) != nil {
		return pluginproc.Spec{}, false
	}
	sum := strings.ToLower(cfg.Plugins[name].SHA256)
	if b, err := hex.DecodeString(sum); sum != "" && (err != nil || len(b) != 32) {
		return pluginproc.Spec{}, false // the host refuses it, with a message
	}
	return pluginproc.PrestartSpec(path, sum, !ra.close), true
}

// parse reads `[--config F] run [FLAGS] FILE ...` as cobra and pflag
// would, for the flags that decide the plugin.
func parse(args []string) (runArgs, bool) {
	var ra runArgs
	i := 0
	// Before the subcommand, only the root's persistent --config.
	for ; i < len(args) && args[i] != "run"; i++ {
		switch a := args[i]; {
		case a == "--config" && i+1 < len(args):
			i++
			ra.configFile = args[i]
		case strings.HasPrefix(a, "--config="):
			ra.configFile = strings.TrimPrefix(a, "--config=")
		default:
			return ra, false
		}
	}
	if i == len(args) {
		return ra, false
	}
	// run's flags stop at FILE: everything after it is the command's.
	for i++; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			i++
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			takesValue, known := RunFlags[name]
			if !known || len(name) == 1 {
				return ra, false
			}
			if takesValue && !hasValue {
				if i+1 == len(args) {
					return ra, false
				}
				i++
				value = args[i]
			}
			if !ra.set(name, value, hasValue || takesValue) {
				return ra, false
			}
			continue
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// A cluster of short flags, the last of which may take a
			// value: the rest of the word, or the next argument.
			for j := 1; j < len(a); j++ {
				name, known := RunShorthands[a[j]]
				if !known {
					return ra, false
				}
				if !RunFlags[name] {
					if !ra.set(name, "", false) {
						return ra, false
					}
					continue
				}
				value := a[j+1:]
				if value == "" {
					if i+1 == len(args) {
						return ra, false
					}
					i++
					value = args[i]
				}
				if !ra.set(name, value, true) {
					return ra, false
				}
				break
			}
			continue
		}
		if i >= len(args) || args[i] == "" {
			return ra, false
		}
		ra.file = args[i]
		return ra, true
	}
	return ra, false
}

// set records a flag that decides the plugin; the others only need to be
// skipped. It reports false for a value it cannot read.
func (ra *runArgs) set(name, value string, hasValue bool) bool {
	switch name {
	case "backend":
		ra.backend = value
	case "fcntl":
		ra.backend = "ofd"
	case "version", "unlock", "fd", "command":
		return false // no plugin to start, or not for a file
	case "config":
		ra.configFile = value
	case "close":
		ra.close = true
		if hasValue {
			switch value {
			case "true", "1":
			case "false", "0":
				ra.close = false
			default:
				return false
			}
		}
	}
	return true
}
