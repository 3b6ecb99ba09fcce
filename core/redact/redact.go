// Package redact hides the credentials a URL can carry
// (http://user:password@host) in text bound for logs, terminals and
// `lockmgr config`. It is apart from core/config, and imports only the
// standard library, so that a backend plugin that only needs to keep a
// password out of its errors does not link the configuration's TOML
// parser.
package redact

import "strings"

// userinfoMask stands in for the user info of a URL.
const userinfoMask = "***"

// Userinfo replaces the user info of each URL in s with "***":
// "http://user:pass@host" becomes "http://***@host". s may hold several,
// separated by white space, "," or ";", as a LOCKMGR_ETCD_ENDPOINTS list
// does. A URL with a scheme loses everything up to the last "@" after
// "://", so that a password with an unescaped "@" or "/" is hidden whole;
// one without a scheme ("user:pass@host:2379", as etcd takes endpoints)
// when what precedes its "@" has a ":". An address with no password
// ("ops@example.com") is left as it is.
func Userinfo(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && !isSeparator(s[i]) {
			continue
		}
		b.WriteString(redactURL(s[start:i]))
		if i < len(s) {
			b.WriteByte(s[i])
		}
		start = i + 1
	}
	return b.String()
}

func isSeparator(c byte) bool {
	return c == ',' || c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// redactURL hides the user info of one URL, or returns t as it is.
func redactURL(t string) string {
	prefix, rest := "", t
	if i := strings.Index(t, "://"); i >= 0 {
		prefix, rest = t[:i+3], t[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	if at <= 0 {
		return t // no user info, or an empty one
	}
	if prefix == "" && !strings.Contains(rest[:at], ":") {
		return t
	}
	return prefix + userinfoMask + rest[at:]
}

// Error returns err with Userinfo applied to its text, since an error
// that names an endpoint ends up in logs and on terminals; errors.Is and
// errors.As still see err itself. It returns nil for nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}

type redactedError struct{ err error }

func (r redactedError) Error() string { return Userinfo(r.err.Error()) }

func (r redactedError) Unwrap() error { return r.err }
