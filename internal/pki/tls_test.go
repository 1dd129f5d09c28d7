package pki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/pki"
)

type handshakeResult struct {
	serverErr error
	clientErr error
	peer      pki.Identity // the client's identity as the server saw it
}

// handshake runs a real TLS handshake over loopback TCP. TLS 1.3 lets the client finish its
// side before the server has judged the client certificate, so the client also reads the
// server's first byte: that is where a rejection reaches it.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // closing a listener only stops accepting

	type serverOut struct {
		err error
		id  pki.Identity
	}
	done := make(chan serverOut, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- serverOut{err: err}
			return
		}
		defer func() { _ = c.Close() }() // the handshake result is what the test checks
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		conn := tls.Server(c, serverCfg)
		if err := conn.Handshake(); err != nil {
			done <- serverOut{err: err}
			return
		}
		st := conn.ConnectionState()
		id, err := pki.IdentityFromTLS(&st)
		if err == nil {
			_, err = conn.Write([]byte{1})
		}
		done <- serverOut{err: err, id: id}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the handshake result is what the test checks
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	conn := tls.Client(c, clientCfg)
	clientErr := conn.Handshake()
	if clientErr == nil {
		_, clientErr = io.ReadFull(conn, make([]byte, 1))
	}
	out := <-done
	return handshakeResult{serverErr: out.err, clientErr: clientErr, peer: out.id}
}

func TestMutualTLS(t *testing.T) {
	caDir := newCA(t)
	otherCA := newCA(t)
	dir := t.TempDir()
	issue := func(ca, name, role string) (string, string) {
		t.Helper()
		c, k, err := pki.Issue(ca, dir, name, role, nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	srvCert, srvKey := issue(caDir, "coord", pki.RoleServer)
	signerCert, signerKey := issue(caDir, "signer-1", pki.RoleSigner)
	driverCert, driverKey := issue(caDir, "driver-1", pki.RoleDriver)
	rogueCert, rogueKey := issue(otherCA, "signer-2", pki.RoleSigner)
	caPath := filepath.Join(caDir, pki.CACertFile)

	serverCfg, err := pki.ServerTLSConfig(srvCert, srvKey, caPath)
	if err != nil {
		t.Fatal(err)
	}
	client := func(cert, key, serverName string) *tls.Config {
		t.Helper()
		cfg, err := pki.ClientTLSConfig(cert, key, caPath, serverName)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	noCert := client(signerCert, signerKey, "localhost")
	noCert.Certificates = nil

	tests := []struct {
		name      string
		server    *tls.Config
		client    *tls.Config
		wantPeer  pki.Identity
		wantError bool
	}{
		{name: "signer", server: serverCfg, client: client(signerCert, signerKey, "localhost"),
			wantPeer: pki.Identity{Name: "signer-1", Role: pki.RoleSigner}},
		{name: "driver by IP", server: serverCfg, client: client(driverCert, driverKey, "127.0.0.1"),
			wantPeer: pki.Identity{Name: "driver-1", Role: pki.RoleDriver}},
		{name: "client cert of another CA", server: serverCfg, client: client(rogueCert, rogueKey, "localhost"), wantError: true},
		{name: "no client cert", server: serverCfg, client: noCert, wantError: true},
		{name: "server cert used as client", server: serverCfg, client: client(srvCert, srvKey, "localhost"), wantError: true},
		{name: "wrong server name", server: serverCfg, client: client(signerCert, signerKey, "sigil.example.com"), wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, tt.server, tt.client)
			if tt.wantError {
				if res.serverErr == nil || res.clientErr == nil {
					t.Fatalf("handshake succeeded: server err %v, client err %v", res.serverErr, res.clientErr)
				}
				t.Logf("refused as expected: server: %v; client: %v", res.serverErr, res.clientErr)
				return
			}
			if res.serverErr != nil || res.clientErr != nil {
				t.Fatalf("handshake failed: server err %v, client err %v", res.serverErr, res.clientErr)
			}
			if res.peer != tt.wantPeer {
				t.Errorf("peer = %v, want %v", res.peer, tt.wantPeer)
			}
		})
	}

	// A server whose certificate is not a server identity must be refused by the client, even
	// when it chains to the right CA.
	t.Run("signer posing as server", func(t *testing.T) {
		fake, err := pki.ServerTLSConfig(signerCert, signerKey, caPath)
		if err != nil {
			t.Fatal(err)
		}
		res := handshake(t, fake, client(driverCert, driverKey, "localhost"))
		if res.clientErr == nil {
			t.Fatal("client accepted a signer certificate as the server")
		}
	})
	if serverCfg.MinVersion != tls.VersionTLS13 || serverCfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server config: MinVersion %x, ClientAuth %v", serverCfg.MinVersion, serverCfg.ClientAuth)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	caDir := newCA(t)
	dir := t.TempDir()
	c, k, err := pki.Issue(caDir, dir, "coord", pki.RoleServer, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, k2, err := pki.Issue(caDir, dir, "other", pki.RoleSigner, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(caDir, pki.CACertFile)
	missing := filepath.Join(dir, "missing.pem")
	if _, err := pki.ServerTLSConfig(c, k2, caPath); err == nil {
		t.Error("mismatched key accepted")
	}
	if _, err := pki.ServerTLSConfig(c, k, missing); err == nil {
		t.Error("missing CA accepted")
	}
	if _, err := pki.LoadCertPool(k); err == nil {
		t.Error("a key file accepted as a CA pool")
	}
	if _, err := pki.ClientTLSConfig(missing, k, caPath, "localhost"); err == nil {
		t.Error("missing certificate accepted")
	}
}

func selfSigned(t *testing.T, subject pkix.Name) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: subject, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestIdentityFromCert(t *testing.T) {
	tests := []struct {
		name    string
		subject pkix.Name
		want    pki.Identity
		wantErr bool
	}{
		{"signer", pkix.Name{CommonName: "s1", OrganizationalUnit: []string{"signer"}}, pki.Identity{Name: "s1", Role: "signer"}, false},
		{"server", pkix.Name{CommonName: "sigil-server", OrganizationalUnit: []string{"server"}}, pki.Identity{Name: "sigil-server", Role: "server"}, false},
		{"no OU", pkix.Name{CommonName: "s1"}, pki.Identity{}, true},
		{"two OUs", pkix.Name{CommonName: "s1", OrganizationalUnit: []string{"signer", "driver"}}, pki.Identity{}, true},
		{"unknown role", pkix.Name{CommonName: "s1", OrganizationalUnit: []string{"admin"}}, pki.Identity{}, true},
		{"bad CN", pkix.Name{CommonName: "S 1", OrganizationalUnit: []string{"signer"}}, pki.Identity{}, true},
		{"empty CN", pkix.Name{OrganizationalUnit: []string{"signer"}}, pki.Identity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pki.IdentityFromCert(selfSigned(t, tt.subject))
			if tt.wantErr {
				if !errors.Is(err, pki.ErrInvalidIdentity) {
					t.Fatalf("error = %v, want ErrInvalidIdentity", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := pki.IdentityFromCert(nil); !errors.Is(err, pki.ErrInvalidIdentity) {
		t.Errorf("nil certificate: %v", err)
	}
}

func TestIdentityFromTLSUnverified(t *testing.T) {
	cert := selfSigned(t, pkix.Name{CommonName: "s1", OrganizationalUnit: []string{"signer"}})
	tests := []struct {
		name  string
		state *tls.ConnectionState
	}{
		{"nil state", nil},
		{"presented but unverified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}},
		{"empty chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pki.IdentityFromTLS(tt.state); !errors.Is(err, pki.ErrUnverified) {
				t.Fatalf("error = %v, want ErrUnverified", err)
			}
		})
	}
}
