package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// testCA makes certificates for one test: a CA, and leaves signed by it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "consentd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf returns a certificate and key in PEM, for a server (on 127.0.0.1) or
// a client.
func (ca *testCA) leaf(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMutualTLSOnBothListeners(t *testing.T) {
	ca, dir, logs := newTestCA(t), t.TempDir(), &syncBuffer{}
	serverCert, serverKey := ca.leaf(t, "consentd", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.leaf(t, "checkout-service", x509.ExtKeyUsageClientAuth)
	a, err := New(func() config.Config {
		c := testConfig(t, redistest.Start(t).URL())
		c.TLSCert = writeFile(t, dir, "server.pem", serverCert)
		c.TLSKey = writeFile(t, dir, "server-key.pem", serverKey)
		c.TLSClientCA = writeFile(t, dir, "ca.pem", ca.pem)
		return c
	}(), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, a)
	defer stop()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}
	withoutCert := &tls.Config{RootCAs: roots}

	call := func(c *tls.Config) error {
		conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(c)), grpc.WithUnaryInterceptor(withCredentials))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = consentv1.NewConsentServiceClient(conn).GetPolicy(ctx(t), &consentv1.GetPolicyRequest{})
		return err
	}
	if err := call(withCert); err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	if err := call(withoutCert); status.Code(err) != codes.Unavailable {
		t.Fatalf("gRPC without a client certificate: %v, want the handshake refused", err)
	}

	get := func(c *tls.Config, scheme string) (*http.Response, error) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: c}, Timeout: 5 * time.Second}
		req, _ := http.NewRequest("GET", scheme+"://"+a.HTTPAddr()+"/v1/policy", nil)
		req.Header.Set("Authorization", "Bearer "+apiKeys["read"])
		return client.Do(req)
	}
	resp, err := get(withCert, "https")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HTTPS with a client certificate: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := get(withoutCert, "https"); err == nil {
		t.Fatal("HTTPS without a client certificate was served")
	}
	if resp, err := get(nil, "http"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP was served")
	}
	stop()
	// net/http's own messages reach the log without the client's address.
	var httpLines []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"http server"`) {
			httpLines = append(httpLines, line)
		}
	}
	if len(httpLines) == 0 || strings.Contains(strings.Join(httpLines, "\n"), "127.0.0.1") {
		t.Errorf("http server log lines: %q", httpLines)
	}
}
