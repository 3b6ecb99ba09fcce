package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lockmgr/lockmgr/core/backend"
	"github.com/lockmgr/lockmgr/core/redact"
)

// settings are the backend's configuration, decoded and checked.
type settings struct {
	endpoints   []string
	prefix      string
	ttl         time.Duration
	dialTimeout time.Duration
	// requestTimeout bounds one request to a connected cluster; see
	// defaultRequestTimeout.
	requestTimeout time.Duration
	// stopBeforeExpiry is how long before its lease can expire a lock
	// is declared lost (see watch); under ttl.
	stopBeforeExpiry time.Duration
	tls              *tls.Config
	username         string
	password         string
}

// defaultSettings are what an unconfigured backend uses: a local etcd,
// on the port and with the dial timeout etcdctl would use, and a TTL
// short enough that a crashed holder's lock frees within seconds.
func defaultSettings() settings {
	return settings{
		endpoints:      []string{"127.0.0.1:2379"},
		prefix:         "/lockmgr/",
		ttl:            10 * time.Second,
		dialTimeout:    5 * time.Second,
		requestTimeout: defaultRequestTimeout,
	}
}

// defaultRequestTimeout is how long a request to a connected cluster may
// take: etcd answers a request it cannot serve (a proposal lost with a
// leader that died) only when its own request timeout expires, 5s and two
// election timeouts, 7s with etcd's default election timeout of 1s; a
// second more is for the answer's way back. Cut shorter, the request
// would be given up just before etcd said it may be tried again.
const defaultRequestTimeout = 8 * time.Second

func (s settings) endpointList() string { return strings.Join(s.endpoints, ",") }

// settingKeys are the keys of [backends.etcd], each with its decoder.
var settingKeys = map[string]func(*settings, json.RawMessage) error{
	"endpoints":    decodeEndpoints,
	"prefix":       func(s *settings, v json.RawMessage) error { return decodeString(v, &s.prefix) },
	"ttl":          decodeTTL,
	"dial_timeout": decodeDialTimeout,
	"request_timeout": func(s *settings, v json.RawMessage) error {
		return decodePositive(v, &s.requestTimeout)
	},
	"stop_before_expiry": decodeStopBeforeExpiry,
	"tls_ca":             nil, // read together with tls_cert and tls_key
	"tls_cert":           nil,
	"tls_key":            nil,
	"username":           func(s *settings, v json.RawMessage) error { return decodeString(v, &s.username) },
	"password":           decodePassword,
}

// configError is a setting refused, naming the key but never its value,
// which may be a secret, unless the caller put it in why.
func configError(key, why string) error {
	return &backend.Error{Op: "configure", Backend: backendName,
		Err: fmt.Errorf("%w: %s: %s", backend.ErrConfig, key, why)}
}

// parseSettings decodes the JSON object the host sends to Configure.
func parseSettings(raw []byte) (settings, error) {
	s := defaultSettings()
	if len(bytes.TrimSpace(raw)) == 0 {
		return s, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		// The decoder's message may quote the text, and with it a password.
		return s, &backend.Error{Op: "configure", Backend: backendName,
			Err: fmt.Errorf("%w: the settings are not one JSON object", backend.ErrConfig)}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // report the same first error every time
	for _, k := range keys {
		decode, known := settingKeys[k]
		if !known {
			return s, configError(k, "unknown key (known: endpoints, prefix, ttl, dial_timeout, request_timeout, stop_before_expiry, tls_ca, tls_cert, tls_key, username, password)")
		}
		if decode == nil || string(fields[k]) == "null" {
			continue
		}
		if err := decode(&s, fields[k]); err != nil {
			return s, configError(k, err.Error())
		}
	}
	if err := decodeTLS(&s, fields); err != nil {
		return s, err
	}
	switch {
	case s.stopBeforeExpiry >= s.ttl:
		return s, configError("stop_before_expiry", fmt.Sprintf("%v is not shorter than the ttl, %v", s.stopBeforeExpiry, s.ttl))
	case s.password != "" && s.username == "":
		return s, configError("password", "given without a username")
	case s.username != "" && s.password == "":
		return s, configError("username", "given without a password")
	}
	return s, nil
}

func decodeString(v json.RawMessage, into *string) error {
	if err := json.Unmarshal(v, into); err != nil {
		return errors.New("want a string")
	}
	return nil
}

func decodePassword(s *settings, v json.RawMessage) error {
	if err := json.Unmarshal(v, &s.password); err != nil {
		return errors.New("want a string") // and not a word of what it was
	}
	return nil
}

// decodeEndpoints takes a comma-separated string, as an environment
// variable gives it, or an array of strings, as TOML does.
func decodeEndpoints(s *settings, v json.RawMessage) error {
	var list []string
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		list = strings.Split(one, ",")
	} else if err := json.Unmarshal(v, &list); err != nil {
		return errors.New(`want a string ("host:port,host:port") or an array of strings`)
	}
	var eps []string
	for _, ep := range list {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		if err := checkEndpoint(ep); err != nil {
			return err
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return errors.New("no endpoint given")
	}
	s.endpoints = eps
	return nil
}

// checkEndpoint accepts what etcdctl's --endpoints does: host:port, or a
// URL with the http, https, unix or unixs scheme.
func checkEndpoint(ep string) error {
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("endpoint %q is not a URL", redact.Userinfo(ep))
		}
		switch u.Scheme {
		case "http", "https", "unix", "unixs":
			return nil
		}
		return fmt.Errorf("endpoint %q: scheme %q is not http, https, unix or unixs", redact.Userinfo(ep), u.Scheme)
	}
	if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
		return fmt.Errorf("endpoint %q is not host:port or a URL", redact.Userinfo(ep))
	}
	return nil
}

// decodeDuration takes a JSON number of seconds, or a string: a number of
// seconds ("5", as an environment variable gives it) or a Go duration
// ("1500ms").
func decodeDuration(v json.RawMessage) (time.Duration, error) {
	var text string
	if err := json.Unmarshal(v, &text); err != nil {
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			return 0, errors.New(`want seconds (5) or a duration ("5s")`)
		}
		text = n.String()
	}
	text = strings.TrimSpace(text)
	if secs, err := strconv.ParseFloat(text, 64); err == nil {
		if secs > float64(1<<31) || secs < -float64(1<<31) {
			return 0, fmt.Errorf("%q seconds is out of range", text)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf(`%q is neither seconds (5) nor a duration ("5s")`, text)
	}
	return d, nil
}

// decodeTTL takes the lease TTL, which etcd counts in whole seconds.
func decodeTTL(s *settings, v json.RawMessage) error {
	d, err := decodeDuration(v)
	switch {
	case err != nil:
		return err
	case d < time.Second:
		return fmt.Errorf("%v is under the minimum of 1s", d)
	case d%time.Second != 0:
		return fmt.Errorf("%v is not a whole number of seconds, which is what an etcd lease counts in", d)
	}
	s.ttl = d
	return nil
}

func decodeDialTimeout(s *settings, v json.RawMessage) error {
	return decodePositive(v, &s.dialTimeout)
}

// decodeStopBeforeExpiry takes a duration of zero or more.
func decodeStopBeforeExpiry(s *settings, v json.RawMessage) error {
	d, err := decodeDuration(v)
	switch {
	case err != nil:
		return err
	case d < 0:
		return fmt.Errorf("%v is negative", d)
	}
	s.stopBeforeExpiry = d
	return nil
}

// decodePositive takes a duration that must be positive.
func decodePositive(v json.RawMessage, into *time.Duration) error {
	d, err := decodeDuration(v)
	switch {
	case err != nil:
		return err
	case d <= 0:
		return fmt.Errorf("%v is not positive", d)
	}
	*into = d
	return nil
}

// decodeTLS reads the certificate files the tls_* keys name, now, so that
// a wrong path is an error of the configuration rather than of a lock.
func decodeTLS(s *settings, fields map[string]json.RawMessage) error {
	var ca, cert, key string
	for k, into := range map[string]*string{"tls_ca": &ca, "tls_cert": &cert, "tls_key": &key} {
		if v, ok := fields[k]; ok && string(v) != "null" {
			if err := decodeString(v, into); err != nil {
				return configError(k, err.Error())
			}
		}
	}
	if ca == "" && cert == "" && key == "" {
		return nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return configError("tls_ca", err.Error())
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return configError("tls_ca", fmt.Sprintf("no PEM certificate in %s", ca))
		}
	}
	switch {
	case cert != "" && key == "":
		return configError("tls_key", "tls_cert is given, but not the key that goes with it")
	case key != "" && cert == "":
		return configError("tls_cert", "tls_key is given, but not the certificate that goes with it")
	case cert != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return configError("tls_cert", fmt.Sprintf("%s with key %s: %v", cert, key, err))
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	s.tls = conf
	return nil
}
