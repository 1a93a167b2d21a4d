package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key to
// dir and returns their paths and a pool holding the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leaktrace test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestAgentWebConfig serves the agent with an exporter-toolkit web config of
// TLS and basic auth: /metrics answers over https to the right credentials
// only, a client that does not trust the certificate is refused, and plain
// http gets no metrics.
func TestAgentWebConfig(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	const user, password = "scraper", "s3cret-for-tests"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	yml := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n", certFile, keyFile, user, hash)
	if err := os.WriteFile(webConfig, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}

	p := launchAgent(t, "--comm", "leaky-c", "--interval", "500ms", "--web.config.file", webConfig)
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	https := "https://" + p.addr
	withAuth := func(r *http.Request) { r.SetBasicAuth(user, password) }
	waitReady(t, trusting, https, withAuth)

	get := func(c *http.Client, url string, auth func(*http.Request)) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != nil {
			auth(req)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	code, body, err := get(trusting, https+"/metrics", withAuth)
	if err != nil || code != http.StatusOK {
		t.Fatalf("https /metrics with credentials: %d %v, want 200", code, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing metrics: %v", err)
	}
	if v := series(mfs, "leaktrace_agent_ready", nil); len(v) != 1 || v[0] != 1 {
		t.Errorf("leaktrace_agent_ready = %v over https, want [1]", v)
	}

	for _, c := range []struct {
		name string
		auth func(*http.Request)
	}{
		{"no credentials", nil},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth(user, "not-"+password) }},
		{"unknown user", func(r *http.Request) { r.SetBasicAuth("someone", password) }},
	} {
		code, body, err := get(trusting, https+"/metrics", c.auth)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("https /metrics with %s: %d %v, want 401", c.name, code, err)
		}
		if strings.Contains(body, "leaktrace_") {
			t.Errorf("https /metrics with %s served metrics", c.name)
		}
	}

	// A client without the test CA must fail the handshake: the agent serves
	// the configured certificate, not one the system trusts.
	untrusting := &http.Client{Timeout: 5 * time.Second}
	if _, _, err := get(untrusting, https+"/metrics", withAuth); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("https with the system's roots: err = %v, want a certificate error", err)
	}

	// Plain http to the TLS listener gets Go's 400, never the metrics.
	code, body, err = get(untrusting, "http://"+p.addr+"/metrics", withAuth)
	if err == nil && (code == http.StatusOK || strings.Contains(body, "leaktrace_")) {
		t.Errorf("plain http /metrics: %d, served metrics over plain http", code)
	}
	t.Logf("plain http: status %d, err %v", code, err)
}
