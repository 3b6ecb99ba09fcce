package config

// What "lockmgr config" may print of a backend's settings. A key's name
// says little about its value: a password sits in an endpoint URL
// (http://user:pass@host), and a misspelt key ("pasword") names no secret
// at all. So a value is shown only when its backend declares the key safe
// to show, and even then any URL user info in it is hidden.

import (
	"slices"
	"strings"

	"github.com/lockmgr/lockmgr/core/redact"
)

// Redacted stands in for a setting's value that is not shown.
const Redacted = "(set, not shown)"

// shownSettings declares, for each backend that comes with lockmgr and
// takes settings, the keys whose values are not secret. A key not listed,
// whether a misspelling, a key added later or any key of a third-party
// backend (lockmgr cannot know what its keys mean), is never shown, unless
// the configuration declares it with [plugins.NAME] shown_settings.
// Keep it in step with the backend's own list of keys: a key left out
// here is only hidden, never leaked.
var shownSettings = map[string]map[string]bool{
	// backends/etcd: the paths of the TLS files, not their contents;
	// the username, not the password.
	"etcd": {
		"endpoints": true, "prefix": true, "ttl": true, "dial_timeout": true,
		"request_timeout": true, "stop_before_expiry": true,
		"tls_ca": true, "tls_cert": true, "tls_key": true, "username": true,
	},
}

// secretWords are parts of key names that always mean a secret, even in
// a key declared safe by mistake.
var secretWords = []string{"password", "passwd", "secret", "token", "credential"}

// SettingShown reports whether the value of key in backend's settings may
// be printed: the key is declared safe to show, by lockmgr for its own
// backends or by [plugins.NAME] shown_settings in c (which may be nil),
// and its name does not name a secret.
func (c *Config) SettingShown(backend, key string) bool {
	declared := shownSettings[backend][key]
	if !declared && c != nil {
		declared = slices.Contains(c.Plugins[backend].ShownSettings, key)
	}
	if !declared {
		return false
	}
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return false
		}
	}
	return true
}

// ShownSetting returns what may be printed of value, key's value in
// backend's settings: Redacted unless SettingShown, else a copy of value
// with the user info of every URL in it, at any depth, replaced by
// RedactUserinfo. value itself is left as it is.
func (c *Config) ShownSetting(backend, key string, value any) any {
	if !c.SettingShown(backend, key) {
		return Redacted
	}
	return redactValue(value)
}

// redactValue copies v, a decoded TOML value, with RedactUserinfo applied
// to every string in it.
func redactValue(v any) any {
	switch v := v.(type) {
	case string:
		return RedactUserinfo(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = redactValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = redactValue(e)
		}
		return out
	default:
		return v
	}
}

// RedactUserinfo replaces the user info of each URL in s with "***", as
// redact.Userinfo does; it is kept here for the callers of config's API.
func RedactUserinfo(s string) string { return redact.Userinfo(s) }
