package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// File is the validated contents of one configuration file, before it is
// merged with the other layers. Load uses it; it is exported so that tools
// (and the fuzz test) can check one file on its own.
type File struct {
	// Name is the file's name, as given to Parse.
	Name string
	// Backend, PluginDir and LockFileMode are the scalar keys; each is
	// meaningful only when Lines has its key.
	Backend      string
	PluginDir    string
	LockFileMode os.FileMode
	// SharedPluginIdle is shared_plugin_idle.
	SharedPluginIdle time.Duration
	// Lines maps each scalar key the file sets (KeyBackend, KeyPluginDir,
	// KeyLockFileMode, KeySharedPluginIdle) to the line that sets it. A key that is absent was
	// not set, which a zero value could not say: mode 0o000 is valid.
	Lines map[string]int
	// Plugins maps a backend name to its [plugins.NAME] table.
	Plugins map[string]Plugin
	// Rules are the file's [[rules]], in file order.
	Rules []Rule
	// Backends maps a backend name to its free-form [backends.NAME] table.
	Backends map[string]map[string]any
}

// Parse decodes and validates one configuration file's contents. name is
// used in errors and in the Sources of rules and plugins; Parse does not
// read it. Every error is an *Error carrying name and, where known, the
// line. Sources in the result have an empty Kind, which Load fills in.
func Parse(name string, data []byte) (*File, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, decodeError(name, err)
	}
	pos, err := indexPositions(data)
	if err != nil {
		return nil, parserError(name, data, err)
	}
	c := &checker{name: name, pos: pos}
	return c.file(doc)
}

// decodeError turns a go-toml error into an *Error with the line it
// reports, keeping the original for its multi-line context.
func decodeError(name string, err error) error {
	e := &Error{File: name, Msg: "invalid TOML: " + strings.TrimPrefix(err.Error(), "toml: "), Err: err}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		e.Line, _ = de.Position()
	}
	return e
}

// parserError reports a document the AST parser rejects although the
// decoder accepted it. That means the two disagree about TOML, which should
// not happen; the document is refused rather than checked half-blind.
func parserError(name string, data []byte, err error) error {
	e := &Error{File: name, Msg: "invalid TOML: " + err.Error(), Err: err}
	var pe *unstable.ParserError
	if errors.As(err, &pe) {
		// The highlight is a subslice of data, so its offset is the
		// difference of capacities; check it before trusting it.
		if off := cap(data) - cap(pe.Highlight); off >= 0 && off <= len(data) {
			e.Line = strings.Count(string(data[:off]), "\n") + 1
		}
	}
	return e
}

// Known keys at each level, for unknown-key errors and their suggestions.
var (
	topKeys    = []string{KeyBackend, KeyPluginDir, KeyLockFileMode, KeySharedPluginIdle, "plugins", "rules", "backends"}
	pluginKeys = []string{"sha256", "shown_settings"}
	ruleKeys   = []string{"path", "backend"}
)

// checker validates a decoded document against lockmgr's schema,
// attributing each problem to a line.
type checker struct {
	name string
	pos  *positions
}

// errorf returns an *Error at the line of path.
func (c *checker) errorf(path keyPath, format string, args ...any) error {
	return &Error{File: c.name, Line: c.pos.line(path), Msg: fmt.Sprintf(format, args...)}
}

// source returns the Source of the value at path.
func (c *checker) source(path keyPath) Source {
	return Source{File: c.name, Line: c.pos.line(path)}
}

// unknown reports a key that is not in known, suggesting the closest known
// key when the difference looks like a typo.
func (c *checker) unknown(path keyPath, known []string) error {
	key := path[len(path)-1].key
	best, bestDist := "", 3 // a suggestion more than 2 edits away is noise
	for _, k := range known {
		if d := editDistance(key, k); d < bestDist && d < len(k) {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return c.errorf(path, "unknown key %q (did you mean %q?)", path.String(), best)
	}
	return c.errorf(path, "unknown key %q", path.String())
}

// keysInOrder returns the keys of table (at path) in the order they were
// written, so that the first error reported is the first in the file
// whatever the map's iteration order.
func (c *checker) keysInOrder(path keyPath, table map[string]any) []string {
	keys := make([]string, 0, len(table))
	lines := make(map[string]int, len(table))
	for k := range table {
		keys = append(keys, k)
		lines[k] = c.pos.line(path.key(k))
	}
	sort.Slice(keys, func(i, j int) bool {
		if lines[keys[i]] != lines[keys[j]] {
			return lines[keys[i]] < lines[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// file checks the top level of the document.
func (c *checker) file(doc map[string]any) (*File, error) {
	f := &File{Name: c.name, Lines: make(map[string]int)}
	for _, k := range c.keysInOrder(nil, doc) {
		path := keyPath{}.key(k)
		v := doc[k]
		var err error
		switch k {
		case KeyBackend:
			f.Backend, err = c.backendName(path, v)
		case KeyPluginDir:
			f.PluginDir, err = c.absPath(path, v)
		case KeyLockFileMode:
			f.LockFileMode, err = c.mode(path, v)
		case KeySharedPluginIdle:
			f.SharedPluginIdle, err = c.duration(path, v)
		case "plugins":
			f.Plugins, err = c.plugins(path, v)
		case "rules":
			f.Rules, err = c.rules(path, v)
		case "backends":
			f.Backends, err = c.backends(path, v)
		default:
			err = c.unknown(path, topKeys)
		}
		if err != nil {
			return nil, err
		}
		switch k {
		case KeyBackend, KeyPluginDir, KeyLockFileMode, KeySharedPluginIdle:
			f.Lines[k] = c.pos.line(path)
		}
	}
	return f, nil
}

// str returns the string at path, or an error naming what was expected.
func (c *checker) str(path keyPath, v any, want string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", c.errorf(path, "%s must be %s, not %s", path, want, typeName(v))
	}
	return s, nil
}

// table returns the table at path, or an error naming what was expected.
func (c *checker) table(path keyPath, v any, want string) (map[string]any, error) {
	t, ok := v.(map[string]any)
	if !ok {
		return nil, c.errorf(path, "%s must be %s, not %s", path, want, typeName(v))
	}
	return t, nil
}

// backendName checks a backend name at path.
func (c *checker) backendName(path keyPath, v any) (string, error) {
	s, err := c.str(path, v, "a string")
	if err != nil {
		return "", err
	}
	if !ValidBackendName(s) {
		return "", c.errorf(path, "%s %q is not a valid backend name (%s)", path, s, nameSyntax)
	}
	return s, nil
}

// absPath checks an absolute path at path and returns it cleaned, so that
// rule matching compares like with like ("/mnt/nfs/" and "/mnt/nfs").
func (c *checker) absPath(path keyPath, v any) (string, error) {
	s, err := c.str(path, v, "a string")
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(s) {
		return "", c.errorf(path, "%s %q is not an absolute path", path, s)
	}
	return filepath.Clean(s), nil
}

// mode checks lock_file_mode. It is a string of octal digits ("0644") or
// a TOML integer written in octal (0o644). A decimal integer is refused
// even when in range, because lock_file_mode = 644 reads as octal to a
// person but is decimal 644 (0o1204) to TOML, and 400 would quietly become
// 0o620.
// maxSharedPluginIdle bounds shared_plugin_idle: a plugin that outlives
// a day of idleness is a service, which lockmgr does not pretend to be.
const maxSharedPluginIdle = 24 * time.Hour

// duration checks a duration at path, written as Go writes one ("10s",
// "5m", "0s").
func (c *checker) duration(path keyPath, v any) (time.Duration, error) {
	s, err := c.str(path, v, `a duration such as "10s" or "5m"`)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, c.errorf(path, `%s %q is not a duration such as "10s" or "5m"`, path, s)
	case d < 0 || d > maxSharedPluginIdle:
		return 0, c.errorf(path, "%s %q is out of range: from 0s (no shared plugins) to %v", path, s, maxSharedPluginIdle)
	}
	return d, nil
}

func (c *checker) mode(path keyPath, v any) (os.FileMode, error) {
	switch x := v.(type) {
	case string:
		digits := x
		if len(digits) > 2 && (digits[:2] == "0o" || digits[:2] == "0O") {
			digits = digits[2:]
		}
		n, err := strconv.ParseUint(digits, 8, 32)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, c.errorf(path, "%s %q is not an octal mode", path, x)
		}
		if err != nil || n > 0o777 {
			return 0, c.errorf(path, "%s %q is more than 0777: only permission bits may be set", path, x)
		}
		return os.FileMode(n), nil
	case int64:
		text := c.pos.intText(path)
		if text == "" {
			text = strconv.FormatInt(x, 10)
		}
		if !strings.HasPrefix(text, "0o") {
			return 0, c.errorf(path, "%s %s is not written in octal; write the mode as \"0644\" or 0o644", path, text)
		}
		if x < 0 || x > 0o777 {
			return 0, c.errorf(path, "%s %s is more than 0o777: only permission bits may be set", path, text)
		}
		return os.FileMode(x), nil
	default:
		return 0, c.errorf(path, "%s must be an octal string such as \"0644\" or an octal integer such as 0o644, not %s", path, typeName(v))
	}
}

// sha256Len is the length of a SHA-256 digest in hex.
const sha256Len = 64

// plugins checks the [plugins] table.
func (c *checker) plugins(path keyPath, v any) (map[string]Plugin, error) {
	t, err := c.table(path, v, "a table of [plugins.NAME] tables")
	if err != nil {
		return nil, err
	}
	out := make(map[string]Plugin, len(t))
	for _, name := range c.keysInOrder(path, t) {
		np := path.key(name)
		if !ValidBackendName(name) {
			return nil, c.errorf(np, "%s: %q is not a valid backend name (%s)", path, name, nameSyntax)
		}
		entry, err := c.table(np, t[name], "a table")
		if err != nil {
			return nil, err
		}
		p := Plugin{Source: c.source(np)}
		for _, k := range c.keysInOrder(np, entry) {
			kp := np.key(k)
			switch k {
			case "sha256":
			case "shown_settings":
				if p.ShownSettings, err = c.keyNames(kp, entry[k]); err != nil {
					return nil, err
				}
				continue
			default:
				return nil, c.unknown(kp, pluginKeys)
			}
			sum, err := c.str(kp, entry[k], "a string")
			if err != nil {
				return nil, err
			}
			if !isHex(sum, sha256Len) {
				return nil, c.errorf(kp, "%s %q is not a SHA-256 checksum (64 hexadecimal digits)", kp, sum)
			}
			// Lower case, so that comparing with a computed hex digest
			// does not depend on how the administrator typed it.
			p.SHA256 = strings.ToLower(sum)
			p.Source = c.source(kp)
		}
		out[name] = p
	}
	return out, nil
}

// keyNames checks an array of setting names, such as shown_settings.
func (c *checker) keyNames(path keyPath, v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, c.errorf(path, "%s must be an array of key names, not %s", path, typeName(v))
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		ep := path.index(i)
		s, err := c.str(ep, e, "a string")
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, c.errorf(ep, "%s %q is not a key name", ep, s)
		}
		out = append(out, s)
	}
	return out, nil
}

// isHex reports whether s is exactly n hexadecimal digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// rules checks the [[rules]] array.
func (c *checker) rules(path keyPath, v any) ([]Rule, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, c.errorf(path, "%s must be an array of tables ([[rules]]), not %s", path, typeName(v))
	}
	out := make([]Rule, 0, len(arr))
	firstLine := make(map[string]int) // rule path -> line of its first rule
	for i, elem := range arr {
		ep := path.index(i)
		t, err := c.table(ep, elem, "a table with path and backend")
		if err != nil {
			return nil, err
		}
		r := Rule{Source: c.source(ep)}
		for _, k := range c.keysInOrder(ep, t) {
			kp := ep.key(k)
			switch k {
			case "path":
				r.Path, err = c.absPath(kp, t[k])
			case "backend":
				r.Backend, err = c.backendName(kp, t[k])
			default:
				err = c.unknown(kp, ruleKeys)
			}
			if err != nil {
				return nil, err
			}
		}
		if _, ok := t["path"]; !ok {
			return nil, c.errorf(ep, "%s has no path", ep)
		}
		if _, ok := t["backend"]; !ok {
			return nil, c.errorf(ep, "%s has no backend", ep)
		}
		// Two rules for one path in one file cannot both apply, so the
		// second is a mistake, not an override.
		if line, ok := firstLine[r.Path]; ok {
			return nil, c.errorf(ep, "%s: another rule for %s is at line %d", ep, r.Path, line)
		}
		firstLine[r.Path] = r.Source.Line
		out = append(out, r)
	}
	return out, nil
}

// backends checks the [backends] table. Each backend's own table is kept
// as decoded; only the backend can say what its keys mean.
func (c *checker) backends(path keyPath, v any) (map[string]map[string]any, error) {
	t, err := c.table(path, v, "a table of [backends.NAME] tables")
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]any, len(t))
	for _, name := range c.keysInOrder(path, t) {
		np := path.key(name)
		if !ValidBackendName(name) {
			return nil, c.errorf(np, "%s: %q is not a valid backend name (%s)", path, name, nameSyntax)
		}
		settings, err := c.table(np, t[name], "a table")
		if err != nil {
			return nil, err
		}
		out[name] = settings
	}
	return out, nil
}

// typeName names the TOML type of a decoded value, for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a local date or time"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// editDistance returns the Levenshtein distance between a and b, for
// "did you mean" suggestions on unknown keys.
func editDistance(a, b string) int {
	// Keys longer than any known key cannot be a near miss; skip the
	// quadratic work on whatever a fuzzer feeds in.
	if len(a) > 2*len(b)+2 {
		return len(a)
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
