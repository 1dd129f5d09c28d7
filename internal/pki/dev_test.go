package pki_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigil-wallet/sigil/internal/pki"
)

func readAll(t *testing.T, paths ...string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestEnsureDevPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first, err := pki.EnsureDevPKI(dir, []string{"signer-1", "signer-2"}, []string{"driver-1"})
	if err != nil {
		t.Fatalf("first EnsureDevPKI: %v", err)
	}
	if len(first.Nodes) != 3 || first.Nodes["driver-1"].Role != pki.RoleDriver || first.Nodes["signer-2"].Role != pki.RoleSigner {
		t.Fatalf("nodes = %+v", first.Nodes)
	}
	for _, p := range []string{first.ServerKey, first.Nodes["signer-1"].KeyPath, filepath.Join(dir, pki.CAKeyFile)} {
		if got := mode(t, p); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", p, got)
		}
	}
	caBefore := readAll(t, first.CAPath, first.ServerCert, first.Nodes["signer-1"].CertPath)

	// A restart with one more signer keeps every existing identity and issues only the new one.
	second, err := pki.EnsureDevPKI(dir, []string{"signer-1", "signer-2", "signer-3"}, []string{"driver-1"})
	if err != nil {
		t.Fatalf("second EnsureDevPKI: %v", err)
	}
	caAfter := readAll(t, second.CAPath, second.ServerCert, second.Nodes["signer-1"].CertPath)
	for i := range caBefore {
		if !bytes.Equal(caBefore[i], caAfter[i]) {
			t.Errorf("file %d changed on restart", i)
		}
	}
	if second.Nodes["signer-1"] != first.Nodes["signer-1"] || second.CAPath != first.CAPath {
		t.Error("paths changed on restart")
	}
	if _, ok := second.Nodes["signer-3"]; !ok {
		t.Error("signer-3 not issued")
	}

	// The dev PKI must actually work for a handshake.
	srv, err := pki.ServerTLSConfig(second.ServerCert, second.ServerKey, second.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	n := second.Nodes["signer-3"]
	cli, err := pki.ClientTLSConfig(n.CertPath, n.KeyPath, second.CAPath, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, srv, cli); res.serverErr != nil || res.clientErr != nil || res.peer.Name != "signer-3" {
		t.Fatalf("dev handshake: %+v", res)
	}
}

func TestEnsureDevPKIErrors(t *testing.T) {
	tests := []struct {
		name    string
		signers []string
		drivers []string
		prepare func(t *testing.T, dir string)
		want    error
	}{
		{name: "duplicate across roles", signers: []string{"n1"}, drivers: []string{"n1"}, want: pki.ErrInvalidName},
		{name: "server name taken", signers: []string{pki.DevServerName}, want: pki.ErrInvalidName},
		{name: "invalid name", drivers: []string{"Bad Name"}, want: pki.ErrInvalidName},
		{
			name: "half a pair", signers: []string{"s1"},
			prepare: func(t *testing.T, dir string) {
				if _, err := pki.EnsureDevPKI(dir, []string{"s1"}, nil); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(dir, "s1-key.pem")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "node of another role", drivers: []string{"n1"},
			prepare: func(t *testing.T, dir string) {
				if _, err := pki.EnsureDevPKI(dir, []string{"n1"}, nil); err != nil {
					t.Fatal(err)
				}
			},
			want: pki.ErrInvalidIdentity,
		},
		{
			name: "node of another CA", signers: []string{"s1"},
			prepare: func(t *testing.T, dir string) {
				other := t.TempDir()
				if _, err := pki.EnsureDevPKI(other, []string{"s1"}, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := pki.EnsureDevPKI(dir, nil, nil); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{"s1.pem", "s1-key.pem"} {
					b, _ := os.ReadFile(filepath.Join(other, f))
					if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			_, err := pki.EnsureDevPKI(dir, tt.signers, tt.drivers)
			if err == nil {
				t.Fatal("EnsureDevPKI succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}
