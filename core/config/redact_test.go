package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestShownSetting checks what "lockmgr config" may print of a backend
// setting: a value only for a key the backend declares safe to show, with
// URL user info hidden even there, at any depth; for any other key (a
// misspelt one, a third-party backend's) only that it is set.
func TestShownSetting(t *testing.T) {
	secrets := []string{"hunter2", "s3cret", "pa55"}
	for _, tt := range []struct {
		backend, key string
		value        any
		want         string // the JSON of the shown value
	}{
		{"etcd", "endpoints", []any{"http://root:hunter2@a:2379", "b:2379"}, `["http://***@a:2379","b:2379"]`},
		{"etcd", "endpoints", "root:hunter2@a:2379,b:2379", `"***@a:2379,b:2379"`},
		{"etcd", "prefix", "/lockmgr/", `"/lockmgr/"`},
		{"etcd", "ttl", int64(15), `15`},
		{"etcd", "dial_timeout", "3s", `"3s"`},
		{"etcd", "username", "locker", `"locker"`},
		{"etcd", "tls_ca", "/etc/lockmgr/ca.pem", `"/etc/lockmgr/ca.pem"`},
		{"etcd", "password", "hunter2", `"` + Redacted + `"`},
		{"etcd", "pasword", "hunter2", `"` + Redacted + `"`}, // misspelt: not declared
		{"etcd", "passwd", "s3cret", `"` + Redacted + `"`},
		{"etcd", "endpoint", []any{"x:1"}, `"` + Redacted + `"`},
		{"redis", "addr", "localhost:6379", `"` + Redacted + `"`}, // third-party
		{"redis", "nested", map[string]any{"url": "redis://u:pa55@h"}, `"` + Redacted + `"`},
	} {
		got, err := json.Marshal((&Config{}).ShownSetting(tt.backend, tt.key, tt.value))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("ShownSetting(%s, %s, %v) = %s, want %s", tt.backend, tt.key, tt.value, got, tt.want)
		}
		for _, s := range secrets {
			if strings.Contains(string(got), s) {
				t.Errorf("ShownSetting(%s, %s) shows %q", tt.backend, tt.key, s)
			}
		}
	}

	// The value given is left as it was: the plugin still needs it.
	v := []any{"http://u:hunter2@a"}
	(&Config{}).ShownSetting("etcd", "endpoints", v)
	if v[0] != "http://u:hunter2@a" {
		t.Errorf("ShownSetting changed its argument: %v", v)
	}
}

// TestShownSettingDeclared checks the declaration a third-party backend's
// keys need to be shown: [plugins.NAME] shown_settings, in the
// configuration. A key naming a secret stays hidden even when declared,
// and URL user info is hidden in what is shown.
func TestShownSettingDeclared(t *testing.T) {
	cfg := &Config{Plugins: map[string]Plugin{
		"vault": {ShownSettings: []string{"addr", "api_token", "mounts"}},
	}}
	for _, tt := range []struct {
		backend, key string
		value        any
		want         string
	}{
		{"vault", "addr", "https://app:t0ken@vault:8200", `"https://***@vault:8200"`},
		{"vault", "mounts", map[string]any{"a": []any{"x://u:p@h"}}, `{"a":["x://***@h"]}`},
		{"vault", "api_token", "t0ken", `"` + Redacted + `"`}, // declared, but names a secret
		{"vault", "role", "r", `"` + Redacted + `"`},          // not declared
		{"other", "addr", "a", `"` + Redacted + `"`},          // declared for vault only
	} {
		got, err := json.Marshal(cfg.ShownSetting(tt.backend, tt.key, tt.value))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("ShownSetting(%s, %s, %v) = %s, want %s", tt.backend, tt.key, tt.value, got, tt.want)
		}
	}
	var none *Config
	if none.SettingShown("vault", "addr") || !none.SettingShown("etcd", "endpoints") {
		t.Errorf("a nil Config must show the built-in declarations only")
	}
}
