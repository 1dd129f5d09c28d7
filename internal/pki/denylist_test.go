package pki_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/pki"
)

func devCerts(t *testing.T, names ...string) map[string]*x509.Certificate {
	t.Helper()
	p, err := pki.EnsureDevPKI(filepath.Join(t.TempDir(), "pki"), names, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*x509.Certificate{}
	for _, n := range names {
		data, err := os.ReadFile(p.Nodes[n].CertPath)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(data)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = c
	}
	return out
}

func colons(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = hex.EncodeToString([]byte{x})
	}
	return strings.ToUpper(strings.Join(parts, ":"))
}

// The deny list matches by serial or fingerprint in the forms operators
// copy from openssl, and follows the file as it changes.
func TestDenyList(t *testing.T) {
	certs := devCerts(t, "signer-1", "signer-2", "signer-3")
	path := filepath.Join(t.TempDir(), "deny")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# nobody yet\n")
	d, err := pki.OpenDenyList(path)
	if err != nil {
		t.Fatal(err)
	}
	for n, c := range certs {
		if _, denied := d.Denied(c); denied {
			t.Fatalf("%s denied by an empty list", n)
		}
	}
	fp := sha256.Sum256(certs["signer-2"].Raw)
	write("serial:" + colons(certs["signer-1"].SerialNumber.Bytes()) + "  # lost laptop\n" +
		"sha256:" + colons(fp[:]) + "\n")
	gen := d.Generation()
	if entry, denied := d.Denied(certs["signer-1"]); !denied || !strings.Contains(entry, "serial") {
		t.Fatalf("signer-1 by serial: %q, %v", entry, denied)
	}
	if entry, denied := d.Denied(certs["signer-2"]); !denied || !strings.Contains(entry, "sha256") {
		t.Fatalf("signer-2 by fingerprint: %q, %v", entry, denied)
	}
	if _, denied := d.Denied(certs["signer-3"]); denied {
		t.Fatal("signer-3 denied")
	}
	if d.Generation() == gen {
		t.Fatal("the generation did not move with the change")
	}
	// Bare values: 64 hex digits are a fingerprint, anything shorter a serial.
	fp3 := sha256.Sum256(certs["signer-3"].Raw)
	write(hex.EncodeToString(fp3[:]) + "\n" + certs["signer-1"].SerialNumber.Text(16) + "\n")
	if _, denied := d.Denied(certs["signer-3"]); !denied {
		t.Fatal("signer-3 not denied by a bare fingerprint")
	}
	if _, denied := d.Denied(certs["signer-1"]); !denied {
		t.Fatal("signer-1 not denied by a bare serial")
	}
	if _, denied := d.Denied(certs["signer-2"]); denied {
		t.Fatal("signer-2 still denied after its line went")
	}
	// A serial written without its leading zero (an odd number of hex
	// digits, as big.Int.Text(16) prints it) is still a serial.
	write("serial:abc\nabc\n" + hex.EncodeToString(fp3[:]) + "\n")
	if _, err := d.Refresh(); err != nil {
		t.Fatalf("a serial of odd length: %v", err)
	}
	// A malformed rewrite keeps the last good list, and says why.
	write("not hex at all\n")
	if _, err := d.Refresh(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Refresh of a malformed file: %v", err)
	}
	if _, denied := d.Denied(certs["signer-3"]); !denied {
		t.Fatal("a malformed rewrite lifted the denial")
	}
	// At start a malformed file is fatal.
	if _, err := pki.OpenDenyList(path); err == nil {
		t.Fatal("OpenDenyList accepted a malformed file")
	}
	if _, err := pki.OpenDenyList(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("OpenDenyList accepted a missing file")
	}
}

// FuzzDenyList: no file content makes the parser panic, and whatever it
// accepts it accepts again after a rewrite of the same bytes.
func FuzzDenyList(f *testing.F) {
	f.Add([]byte("serial:01:02\nsha256:" + strings.Repeat("ab", 32) + "\n# c\n"))
	f.Add([]byte("zz\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "deny")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := pki.OpenDenyList(path)
		if err != nil {
			return
		}
		_ = d.Len()
	})
}
