package pki_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/pki"
)

const year = 365 * 24 * time.Hour

func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := pki.InitCA(dir, "Test CA", year); err != nil {
		t.Fatalf("InitCA: %v", err)
	}
	return dir
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitCA(t *testing.T) {
	dir := newCA(t)
	if got := mode(t, dir); got != 0o700 {
		t.Errorf("dir mode = %o, want 700", got)
	}
	certPath := filepath.Join(dir, pki.CACertFile)
	keyPath := filepath.Join(dir, pki.CAKeyFile)
	if got := mode(t, certPath); got != 0o644 {
		t.Errorf("cert mode = %o, want 644", got)
	}
	if got := mode(t, keyPath); got != 0o600 {
		t.Errorf("key mode = %o, want 600", got)
	}
	cert, err := pki.LoadCertificate(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		t.Error("certificate is not a CA")
	}
	if cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
		t.Errorf("MaxPathLen = %d (zero=%v), want 0", cert.MaxPathLen, cert.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; cert.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", cert.KeyUsage, want)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v is not a positive 128-bit number", cert.SerialNumber)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm = %v, want ECDSA", cert.PublicKeyAlgorithm)
	}

	before, _ := os.ReadFile(certPath)
	err = pki.InitCA(dir, "Other CA", year)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second InitCA error = %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(certPath)
	if !bytes.Equal(before, after) {
		t.Error("refused InitCA changed ca.pem")
	}
}

func TestInitCAInvalid(t *testing.T) {
	tests := []struct {
		name     string
		cn       string
		validity time.Duration
	}{
		{"empty common name", "", year},
		{"zero validity", "CA", 0},
		{"negative validity", "CA", -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ca")
			if err := pki.InitCA(dir, tt.cn, tt.validity); err == nil {
				t.Fatal("InitCA succeeded")
			}
			if _, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("failed InitCA left a key behind (stat: %v)", err)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	caDir := newCA(t)
	tests := []struct {
		name, role string
		hosts      []string
		wantEKU    x509.ExtKeyUsage
		wantDNS    []string
		wantIPs    []string
	}{
		{name: "signer-1", role: pki.RoleSigner, wantEKU: x509.ExtKeyUsageClientAuth},
		{name: "hsm_driver.a", role: pki.RoleDriver, wantEKU: x509.ExtKeyUsageClientAuth},
		{
			name: "coord", role: pki.RoleServer, wantEKU: x509.ExtKeyUsageServerAuth,
			wantDNS: []string{"localhost"}, wantIPs: []string{"127.0.0.1", "::1"},
		},
		{
			name: "coord2", role: pki.RoleServer, wantEKU: x509.ExtKeyUsageServerAuth,
			hosts:   []string{"sigil.example.com", "10.0.0.7"},
			wantDNS: []string{"sigil.example.com"}, wantIPs: []string{"10.0.0.7"},
		},
	}
	outDir := filepath.Join(t.TempDir(), "out")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPath, keyPath, err := pki.Issue(caDir, outDir, tt.name, tt.role, tt.hosts, 30*24*time.Hour)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if certPath != filepath.Join(outDir, tt.name+".pem") || keyPath != filepath.Join(outDir, tt.name+"-key.pem") {
				t.Errorf("paths = %s, %s", certPath, keyPath)
			}
			if got := mode(t, keyPath); got != 0o600 {
				t.Errorf("key mode = %o, want 600", got)
			}
			if got := mode(t, certPath); got != 0o644 {
				t.Errorf("cert mode = %o, want 644", got)
			}
			if _, err := pki.LoadKeyPair(certPath, keyPath); err != nil {
				t.Errorf("LoadKeyPair: %v", err)
			}
			cert, err := pki.LoadCertificate(certPath)
			if err != nil {
				t.Fatal(err)
			}
			if cert.IsCA {
				t.Error("leaf is a CA")
			}
			if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{tt.wantEKU}) {
				t.Errorf("ExtKeyUsage = %v, want [%v]", cert.ExtKeyUsage, tt.wantEKU)
			}
			if !slices.Equal(cert.DNSNames, tt.wantDNS) {
				t.Errorf("DNSNames = %v, want %v", cert.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range cert.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IPs = %v, want %v", ips, tt.wantIPs)
			}
			id, err := pki.IdentityFromCert(cert)
			if err != nil {
				t.Fatal(err)
			}
			if id != (pki.Identity{Name: tt.name, Role: tt.role}) {
				t.Errorf("identity = %+v", id)
			}
			caCert, _ := pki.LoadCertificate(filepath.Join(caDir, pki.CACertFile))
			if err := cert.CheckSignatureFrom(caCert); err != nil {
				t.Errorf("not signed by the CA: %v", err)
			}

			keyBefore, _ := os.ReadFile(keyPath)
			_, _, err = pki.Issue(caDir, outDir, tt.name, tt.role, tt.hosts, time.Hour)
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("reissue error = %v, want fs.ErrExist", err)
			}
			if keyAfter, _ := os.ReadFile(keyPath); !bytes.Equal(keyBefore, keyAfter) {
				t.Error("refused Issue changed the key")
			}
		})
	}
}

func TestIssueValidityClampedToCA(t *testing.T) {
	caDir := newCA(t)
	certPath, _, err := pki.Issue(caDir, t.TempDir(), "s", pki.RoleSigner, nil, 5*year)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := pki.LoadCertificate(certPath)
	ca, _ := pki.LoadCertificate(filepath.Join(caDir, pki.CACertFile))
	if leaf.NotAfter.After(ca.NotAfter) {
		t.Errorf("leaf expires %v after the CA %v", leaf.NotAfter, ca.NotAfter)
	}
}

func TestIssueInvalid(t *testing.T) {
	caDir := newCA(t)
	tests := []struct {
		desc, name, role string
		hosts            []string
		want             error
	}{
		{"empty name", "", pki.RoleSigner, nil, pki.ErrInvalidName},
		{"uppercase", "Signer", pki.RoleSigner, nil, pki.ErrInvalidName},
		{"slash", "a/b", pki.RoleSigner, nil, pki.ErrInvalidName},
		{"leading dot", "..", pki.RoleSigner, nil, pki.ErrInvalidName},
		{"too long", strings.Repeat("a", 65), pki.RoleSigner, nil, pki.ErrInvalidName},
		{"reserved", "ca", pki.RoleSigner, nil, pki.ErrInvalidName},
		{"unknown role", "x", "admin", nil, pki.ErrInvalidRole},
		{"hosts on client", "x", pki.RoleDriver, []string{"h"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			out := t.TempDir()
			_, _, err := pki.Issue(caDir, out, tt.name, tt.role, tt.hosts, time.Hour)
			if err == nil {
				t.Fatal("Issue succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("failed Issue wrote %d files", len(entries))
			}
		})
	}
	if _, _, err := pki.Issue(t.TempDir(), t.TempDir(), "x", pki.RoleSigner, nil, time.Hour); err == nil {
		t.Error("Issue without a CA succeeded")
	}
	if _, _, err := pki.Issue(caDir, t.TempDir(), strings.Repeat("a", 64), pki.RoleSigner, nil, time.Hour); err != nil {
		t.Errorf("64-character name refused: %v", err)
	}
}
