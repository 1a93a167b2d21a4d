package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Alerts link back to a URL a receiver can open: never http://[::]:9808,
// https when the agent serves TLS.
func TestDefaultExternalURL(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		addr *net.TCPAddr
		tls  bool
		want string
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9808}, false, "http://" + net.JoinHostPort(host, "9808") + "/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9808}, true, "https://" + net.JoinHostPort(host, "9808") + "/"},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 80}, false, "http://10.1.2.3:80/"},
		{&net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 9808}, true, "https://[fd00::1]:9808/"},
	}
	for _, tc := range tests {
		if got := defaultExternalURL(tc.addr, tc.tls); got != tc.want {
			t.Errorf("%v tls=%v: %s, want %s", tc.addr, tc.tls, got, tc.want)
		}
	}
	dir := t.TempDir()
	tlsConf := filepath.Join(dir, "web.yml")
	os.WriteFile(tlsConf, []byte("tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"), 0o644)
	authOnly := filepath.Join(dir, "auth.yml")
	os.WriteFile(authOnly, []byte("basic_auth_users:\n  u: $2y$10$x\n"), 0o644)
	if !webTLS(tlsConf) || webTLS(authOnly) || webTLS("") {
		t.Error("webTLS misreads the web config")
	}
}

// Listening beyond loopback with no web config is what the agent warns about.
func TestExposedAddrs(t *testing.T) {
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	all, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	got := exposedAddrs([]net.Listener{lo, all}, "")
	if len(got) != 1 || !strings.HasSuffix(got[0], all.Addr().String()[strings.LastIndex(all.Addr().String(), ":"):]) {
		t.Errorf("exposed %v, want only %v", got, all.Addr())
	}
	if got := exposedAddrs([]net.Listener{lo, all}, "/etc/leaktrace/web.yml"); len(got) != 0 {
		t.Errorf("with a web config: %v", got)
	}
}
