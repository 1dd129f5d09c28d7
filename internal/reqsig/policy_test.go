package reqsig

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	keys := fixedKeys(t)
	other, err := GenerateKey(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := NewTrusted(
		TrustedKey{Name: "app", Algorithm: Ed25519, PublicKey: keys["ed25519"].PublicKey()},
		TrustedKey{Name: "web", Algorithm: ECDSAP256, PublicKey: keys["p256"].PublicKey()},
	)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	digest := sha256.Sum256([]byte("x"))
	want := Expected{WalletID: "wal_1", Kind: KindHash, Digest: digest[:], ExternalID: "e1"}
	signed := func(k *PrivateKey, mod func(r *Request)) []byte {
		r := &Request{RequestID: "r1", Created: now.Add(-time.Minute), WalletID: "wal_1", Kind: KindHash, Digest: digest[:], ExternalID: "e1"}
		if mod != nil {
			mod(r)
		}
		sig, err := k.Sign(r)
		if err != nil {
			t.Fatal(err)
		}
		return r.Envelope(sig)
	}
	strict := Policy{Trusted: trusted}
	cases := []struct {
		name     string
		policy   Policy
		envelope []byte
		wantErr  error
		wantName string
	}{
		{"ed25519 trusted", strict, signed(keys["ed25519"], nil), nil, "app"},
		{"p256 trusted", strict, signed(keys["p256"], nil), nil, "web"},
		{"unsigned refused", strict, nil, ErrUnsigned, ""},
		{"unsigned allowed without policy", Policy{}, nil, nil, ""},
		{"require without keys refuses unsigned", Policy{Require: true}, nil, ErrUnsigned, ""},
		{"untrusted key", strict, signed(other, nil), ErrUntrusted, ""},
		{"signature without policy still checked", Policy{}, signed(other, func(r *Request) { r.WalletID = "wal_2" }), ErrMismatch, ""},
		{"other wallet", strict, signed(keys["ed25519"], func(r *Request) { r.WalletID = "wal_2" }), ErrMismatch, ""},
		{"other kind", strict, signed(keys["ed25519"], func(r *Request) { r.Kind = KindEIP191 }), ErrMismatch, ""},
		{"other digest", strict, signed(keys["ed25519"], func(r *Request) { r.Digest = make([]byte, 32) }), ErrMismatch, ""},
		{"other external id", strict, signed(keys["ed25519"], func(r *Request) { r.ExternalID = "e2" }), ErrMismatch, ""},
		{"expired", strict, signed(keys["ed25519"], func(r *Request) { r.Created = now.Add(-11 * time.Minute) }), ErrExpired, ""},
		{"from the future", strict, signed(keys["ed25519"], func(r *Request) { r.Created = now.Add(5 * time.Minute) }), ErrExpired, ""},
		{"garbage", strict, []byte("hello"), ErrMalformed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.policy.Verify(c.envelope, want, now)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			if c.wantName != "" && v.KeyName != c.wantName {
				t.Fatalf("key name %q, want %q", v.KeyName, c.wantName)
			}
		})
	}
	t.Run("tampered signature", func(t *testing.T) {
		env := signed(keys["ed25519"], nil)
		env[len(env)-1] ^= 1
		if _, err := strict.Verify(env, want, now); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := k.MarshalPEM()
	path := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(path, pemBytes, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKeyFile(path); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Fatalf("a group-readable key file was accepted: %v", err)
	}
	_ = os.Chmod(path, 0o600)
	if got, err := LoadPrivateKeyFile(path); err != nil || got.PublicText() != k.PublicText() {
		t.Fatalf("load: %v", err)
	}
	trust := filepath.Join(dir, "trusted")
	body := "# comment\n\napp " + k.PublicText() + "\n"
	if err := os.WriteFile(trust, []byte(body), 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(trust, 0o666)
	if _, err := LoadTrusted(trust); err == nil {
		t.Fatal("a world-writable trusted-keys file was accepted")
	}
	_ = os.Chmod(trust, 0o644)
	tr, err := LoadTrusted(trust)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := tr.Name(k.Algorithm, k.PublicKey()); !ok || n != "app" {
		t.Fatalf("name %q %v", n, ok)
	}
	_ = os.WriteFile(trust, []byte(body+"app2 "+k.PublicText()+"\n"), 0o644)
	if _, err := LoadTrusted(trust); err == nil {
		t.Fatal("a key listed twice was accepted")
	}
}
