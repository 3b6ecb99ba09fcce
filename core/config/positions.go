package config

// go-toml's decoder reports positions only for what it rejects; once the
// document is decoded, nothing says where "lock_file_mode" or rules[2] was
// written. This file reads the document a second time with go-toml's
// unstable AST parser and records the line of every key, table header and
// array element, keyed by the same path the checks in parse.go walk.
//
// Decoding into a struct with the strict decoder (DisallowUnknownFields)
// does not remove this pass; as of go-toml v2.4.3 it would lose what the
// pass gives:
//   - the lines of accepted values, which provenance needs ("backend posix
//     from user file ...:3", a rule's or a pin's Source, "another rule for
//     /a is at line 1"): the decoder has no position for a value it accepts;
//   - array indices: a StrictMissingError's key for a typo in the second
//     [[rules]] is rules.paht, not rules[1].paht, and a type mismatch inside
//     rules = [{...}] is keyed rules alone;
//   - the first problem in file order: a type mismatch ends decoding at
//     once, so an unknown key on an earlier line is never reported;
//   - messages in TOML's terms: a mismatch reads "cannot decode TOML integer
//     into struct field config.x.Backend of type string", not "backend must
//     be a string, not an integer".
// Leaf types implementing unstable.Unmarshaler would get a value's text as
// written (0o644 or 644), but not its line: the bytes they receive are a
// copy of the document the decoder read, at no offset it reports.

import (
	"sort"
	"strconv"

	"github.com/pelletier/go-toml/v2/unstable"
)

// pathPart is one step of a keyPath: a key, or an index into an array when
// index >= 0. Keeping the two apart matters because "0" is a valid key.
type pathPart struct {
	key   string
	index int
}

// keyPath locates a value in the document, such as rules[1].path.
type keyPath []pathPart

// key returns p extended by a key. It never shares p's backing array, so
// paths built from a common prefix do not overwrite each other.
func (p keyPath) key(k string) keyPath {
	return append(p[:len(p):len(p)], pathPart{key: k, index: -1})
}

// index returns p extended by an array index.
func (p keyPath) index(i int) keyPath {
	return append(p[:len(p):len(p)], pathPart{index: i})
}

// id encodes p as a map key without ambiguity: keys are length-prefixed,
// so no choice of key bytes can imitate another path.
func (p keyPath) id() string {
	var b []byte
	for _, part := range p {
		if part.index >= 0 {
			b = append(b, '#')
			b = strconv.AppendInt(b, int64(part.index), 10)
			continue
		}
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(len(part.key)), 10)
		b = append(b, ':')
		b = append(b, part.key...)
	}
	return string(b)
}

// String returns p as it appears in messages: rules[1].path.
func (p keyPath) String() string {
	var b []byte
	for i, part := range p {
		switch {
		case part.index >= 0:
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(part.index), 10)
			b = append(b, ']')
		default:
			if i > 0 {
				b = append(b, '.')
			}
			if isBareKey(part.key) {
				b = append(b, part.key...)
			} else {
				b = strconv.AppendQuote(b, part.key)
			}
		}
	}
	return string(b)
}

// isBareKey reports whether k can be written in TOML without quotes.
func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// positions records where the parts of one document were written.
type positions struct {
	// newlines holds the offset of every '\n', to turn offsets into lines
	// by binary search rather than by rescanning the document each time.
	newlines []int
	// lines maps a keyPath id to the line of its key, table header or
	// array element.
	lines map[string]int
	// ints maps the keyPath id of an integer value to its text as written,
	// because the decoded int64 no longer says whether it was 0o644 or 644.
	ints map[string]string
	// arrayTables counts the [[...]] headers seen per resolved path, to
	// number their elements as the decoder does.
	arrayTables map[string]int
}

// indexPositions parses data, which the decoder has already accepted, and
// records the positions of its parts. The error, if the parser disagrees
// with the decoder, is an *unstable.ParserError.
func indexPositions(data []byte) (*positions, error) {
	ix := &positions{
		lines:       make(map[string]int),
		ints:        make(map[string]string),
		arrayTables: make(map[string]int),
	}
	for i, c := range data {
		if c == '\n' {
			ix.newlines = append(ix.newlines, i)
		}
	}

	var p unstable.Parser
	p.Reset(data)
	var table keyPath
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.KeyValue:
			ix.keyValue(table, expr)
		case unstable.Table, unstable.ArrayTable:
			table = ix.header(expr)
		}
	}
	return ix, p.Error()
}

// header records a [table] or [[array table]] header and returns the path
// of the table it opens. In TOML, a header key that passes through an array
// of tables refers to that array's last element, so [rules.x] after the
// second [[rules]] opens rules[1].x.
func (ix *positions) header(expr *unstable.Node) keyPath {
	var path keyPath
	var parts []*unstable.Node
	it := expr.Key()
	for it.Next() {
		parts = append(parts, it.Node())
	}
	for i, part := range parts {
		path = path.key(string(part.Data))
		line := ix.lineAt(part)
		if i == len(parts)-1 && expr.Kind == unstable.ArrayTable {
			id := path.id()
			n := ix.arrayTables[id]
			ix.arrayTables[id] = n + 1
			ix.setIfAbsent(path, line)
			path = path.index(n)
			ix.lines[path.id()] = line
			continue
		}
		if n, ok := ix.arrayTables[path.id()]; ok {
			path = path.index(n - 1)
		}
		ix.setIfAbsent(path, line)
	}
	return path
}

// keyValue records a key = value expression under the table base, and
// everything inside its value.
func (ix *positions) keyValue(base keyPath, kv *unstable.Node) {
	path := base
	line := 0
	it := kv.Key()
	for it.Next() {
		part := it.Node()
		path = path.key(string(part.Data))
		line = ix.lineAt(part)
		// A dotted key a.b = 1 also defines the table a, first here.
		ix.setIfAbsent(path, line)
	}
	ix.lines[path.id()] = line
	ix.value(path, kv.Value(), line)
}

// value records the parts of a value found at path, written on line.
func (ix *positions) value(path keyPath, v *unstable.Node, line int) {
	if !v.Valid() {
		return
	}
	switch v.Kind {
	case unstable.Integer:
		ix.ints[path.id()] = string(v.Data)
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			elem := it.Node()
			if elem.Kind == unstable.Comment {
				continue
			}
			elemPath := path.index(i)
			elemLine := line
			// Array nodes carry no range of their own; a nested array
			// takes its parent's line.
			if elem.Raw.Length > 0 {
				elemLine = ix.lineAt(elem)
			}
			ix.lines[elemPath.id()] = elemLine
			ix.value(elemPath, elem, elemLine)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				ix.keyValue(path, kv)
			}
		}
	}
}

// setIfAbsent records the line of path unless it is known already: a
// table's line is where it was first mentioned.
func (ix *positions) setIfAbsent(path keyPath, line int) {
	id := path.id()
	if _, ok := ix.lines[id]; !ok {
		ix.lines[id] = line
	}
}

// lineAt returns the 1-based line where node n starts.
func (ix *positions) lineAt(n *unstable.Node) int {
	return ix.lineOfOffset(int(n.Raw.Offset))
}

// lineOfOffset returns the 1-based line holding the byte at offset.
func (ix *positions) lineOfOffset(offset int) int {
	return sort.SearchInts(ix.newlines, offset) + 1
}

// line returns the line of path, or of its nearest recorded ancestor when
// path itself was never written (a key that is missing), or 0.
func (ix *positions) line(path keyPath) int {
	for n := len(path); n > 0; n-- {
		if l, ok := ix.lines[path[:n].id()]; ok {
			return l
		}
	}
	return 0
}

// intText returns the integer at path as it was written, or "".
func (ix *positions) intText(path keyPath) string {
	return ix.ints[path.id()]
}
