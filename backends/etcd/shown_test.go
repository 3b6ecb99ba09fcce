package main

import (
	"testing"

	"github.com/lockmgr/lockmgr/core/config"
)

// TestEverySettingButThePasswordIsShown keeps `lockmgr config`'s table of
// keys safe to show (core/config) in step with the keys this backend
// takes: a key added here and not there would show as "(set, not
// shown)", and the password must never be listed.
func TestEverySettingButThePasswordIsShown(t *testing.T) {
	for key := range settingKeys {
		var none *config.Config // lockmgr's own table alone
		shown := none.SettingShown("etcd", key)
		if want := key != "password"; shown != want {
			t.Errorf("config.SettingShown(etcd, %q) = %v, want %v", key, shown, want)
		}
	}
}
