//go:build linux

package main

import (
	"net"
	"net/url"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// defaultExternalURL is the URL alerts link back to when --web.external-url
// is not given: the listen address, with the host's name in place of an
// unspecified address (http://[::]:9808 reaches nothing), https under TLS.
func defaultExternalURL(addr net.Addr, tls bool) string {
	host, port := "localhost", "9808"
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(ta.Port)
		switch {
		case ta.IP == nil || ta.IP.IsUnspecified():
			if h, err := os.Hostname(); err == nil && h != "" {
				host = h
			}
		default:
			host = ta.IP.String()
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port), Path: "/"}).String()
}

// webTLS reports whether an exporter-toolkit web config serves TLS.
func webTLS(path string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var c struct {
		TLS map[string]any `yaml:"tls_server_config"`
	}
	if yaml.Unmarshal(b, &c) != nil {
		return false
	}
	return c.TLS["cert_file"] != nil || c.TLS["cert"] != nil
}

// exposedAddrs lists the listeners that anyone on the network may reach with
// neither TLS nor authentication: not loopback, and no web config.
func exposedAddrs(ls []net.Listener, webConfig string) []string {
	if webConfig != "" {
		return nil
	}
	var out []string
	for _, l := range ls {
		if ta, ok := l.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
			out = append(out, ta.String())
		}
	}
	return out
}
