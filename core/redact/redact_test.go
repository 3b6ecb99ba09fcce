package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestUserinfo(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"http://user:pass@etcd-1:2379", "http://***@etcd-1:2379"},
		{"https://user@etcd-1:2379/x", "https://***@etcd-1:2379/x"},
		{"HTTPS://u:p@h", "HTTPS://***@h"},
		{"http://u:p@ss@h:1", "http://***@h:1"},  // an '@' left unescaped in the password
		{"http://u:pa/ss@h:1", "http://***@h:1"}, // a '/' likewise
		{"u:p@h:2379", "***@h:2379"},             // no scheme, as etcd takes endpoints
		{"http://a:1,http://u:p@b:2,u2:p2@c:3", "http://a:1,http://***@b:2,***@c:3"},
		{"one http://u:p@h two; x://k@y", "one http://***@h two; x://***@y"},
		{"endpoints=http://u:p@h", "endpoints=http://***@h"},
		// Nothing to hide: no user info, or an address with no password.
		{"http://etcd-1:2379", "http://etcd-1:2379"},
		{"10.0.0.1:2379,10.0.0.2:2379", "10.0.0.1:2379,10.0.0.2:2379"},
		{"ops@example.com", "ops@example.com"},
		{"unix://@abstract", "unix://@abstract"},
		{"/var/lib/x@y", "/var/lib/x@y"},
		{"", ""},
	} {
		if got := Userinfo(tt.in); got != tt.want {
			t.Errorf("Userinfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestError checks that a redacted error hides the password in its text
// and nothing else: callers still tell its kind with errors.Is.
func TestError(t *testing.T) {
	err := Error(fmt.Errorf("connecting to http://root:hunter2@a:2379: %w", fs.ErrNotExist))
	if got, want := err.Error(), "connecting to http://***@a:2379: file does not exist"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false, want true", err)
	}
	if Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
}
