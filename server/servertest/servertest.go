// Package servertest starts a real coordinator for tests: real listeners on
// loopback, a real dev PKI for the node port, real SQLite or PostgreSQL.
package servertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
)

// Env is a running coordinator and what a test needs to call it.
type Env struct {
	Server  *server.Server
	Config  server.Config
	APIURL  string
	NodeURL string
	PKI     *pki.DevPKI
	Dir     string
	// Attester is a software stand-in for an HSM's attestation key, pinned
	// when a test enables the HSM backend without pinning keys of its own:
	// tests that play a driver attest keys with it (see Attest).
	Attester *ecdsa.PrivateKey
}

// Attest signs the attestation statement for walletID and pub with the
// Attester, as an HSM would, returning the key id and r || s.
func (e *Env) Attest(t testing.TB, walletID string, pub []byte) (keyID, signature []byte) {
	t.Helper()
	if e.Attester == nil {
		t.Fatal("servertest: no Attester (the test pinned its own attestation keys)")
	}
	r, s, err := ecdsa.Sign(rand.Reader, e.Attester, attest.Digest(walletID, pub))
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, attest.SignatureSize)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return attest.KeyID(&e.Attester.PublicKey), sig
}

// Options adjust the coordinator a test starts.
type Options struct {
	// Configure edits the config before the server starts.
	Configure func(*server.Config)
	// Dialect selects the database; empty means SQLite.
	Dialect db.Dialect
	// Signers and Drivers get node certificates in the dev PKI.
	Signers, Drivers []string
}

// Start runs a coordinator until the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	dir := t.TempDir()
	drivers := append([]string{"driver-x"}, opts.Drivers...)
	signers := append([]string{"signer-x"}, opts.Signers...)
	p, err := pki.EnsureDevPKI(filepath.Join(dir, "pki"), signers, drivers)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		APIAddr:      "127.0.0.1:0",
		NodeAddr:     "127.0.0.1:0",
		MetricsAddr:  "127.0.0.1:0",
		DataDir:      filepath.Join(dir, "data"),
		NodeTLSCert:  p.ServerCert,
		NodeTLSKey:   p.ServerKey,
		NodeClientCA: p.CAPath,
		Logger:       Logger(t),
	}
	if opts.Dialect == db.Postgres {
		cfg.DatabaseURL = dbtest.PostgresURL(t)
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	var attester *ecdsa.PrivateKey
	if cfg.HSM && len(cfg.HSMAttestationKeys) == 0 && !cfg.HSMAllowUnattested {
		attester = pinSoftwareAttester(t, &cfg, dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not shut down within 20 s")
		}
		_ = srv.Close()
	})
	return &Env{Server: srv, Config: cfg, APIURL: srv.APIURL(), NodeURL: "https://" + srv.Addr("node"), PKI: p, Dir: dir, Attester: attester}
}

// pinSoftwareAttester makes a P-256 key, pins its public half in cfg and
// returns it.
func pinSoftwareAttester(t testing.TB, cfg *server.Config, dir string) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := attest.EncodePEM(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "attestation-key.pem")
	if err := os.WriteFile(path, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.HSMAttestationKeys = []string{path}
	return k
}

// Token mints an API token with the given scopes.
func (e *Env) Token(t testing.TB, scopes ...auth.Scope) string {
	t.Helper()
	tok, err := auth.Mint(context.Background(), e.Server.Store(), scopes, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// NodeClient returns an HTTP/2 client presenting the named node's
// certificate (a signer or driver of the dev PKI).
func (e *Env) NodeClient(t testing.TB, name string) *http.Client {
	t.Helper()
	paths, ok := e.PKI.Nodes[name]
	if !ok {
		t.Fatalf("no dev certificate for %q", name)
	}
	tc, err := pki.ClientTLSConfig(paths.CertPath, paths.KeyPath, e.PKI.CAPath, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return NodeHTTPClient(tc)
}

// NodeHTTPClient returns an HTTP/2 client with the given TLS config.
func NodeHTTPClient(tc *tls.Config) *http.Client {
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr}
}

// H2CClient returns a client speaking HTTP/2 without TLS (gRPC on the API
// port needs it).
func H2CClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// Logger returns a logger writing to the test log when -v, else nowhere,
// unless SIGIL_TEST_LOG=1 sends it to stderr.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("SIGIL_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
