package kek_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigil-wallet/sigil/signer/kek"
)

func newKEK(t testing.TB) *kek.KEK {
	t.Helper()
	k, err := kek.Create(filepath.Join(t.TempDir(), "kek"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := newKEK(t)
	for _, pt := range [][]byte{{}, []byte("share"), bytes.Repeat([]byte{1}, 5000)} {
		blob, err := k.Seal("wallet-1", "signer-1", pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) >= 5 && bytes.Contains(blob, pt) {
			t.Fatal("plaintext visible in blob")
		}
		got, err := k.Open("wallet-1", "signer-1", blob)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatal("round trip mismatch")
		}
	}
	a, _ := k.Seal("w", "s", []byte("x"))
	b, _ := k.Seal("w", "s", []byte("x"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same share are identical: data key or nonce reused")
	}
}

func TestOpenRejects(t *testing.T) {
	k := newKEK(t)
	other := newKEK(t)
	blob, err := k.Seal("wallet-1", "signer-1", []byte("secret share"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name           string
		k              *kek.KEK
		wallet, signer string
		blob           []byte
	}{
		{"wrong wallet id", k, "wallet-2", "signer-1", blob},
		{"wrong signer id", k, "wallet-1", "signer-2", blob},
		{"ids shifted across the boundary", k, "wallet-1s", "igner-1", blob},
		{"other KEK", other, "wallet-1", "signer-1", blob},
		{"tampered version", k, "wallet-1", "signer-1", flip(0)},
		{"tampered wrap nonce", k, "wallet-1", "signer-1", flip(1)},
		{"tampered wrapped key", k, "wallet-1", "signer-1", flip(20)},
		{"tampered data nonce", k, "wallet-1", "signer-1", flip(65)},
		{"tampered ciphertext", k, "wallet-1", "signer-1", flip(len(blob) - 20)},
		{"tampered tag", k, "wallet-1", "signer-1", flip(len(blob) - 1)},
		{"truncated", k, "wallet-1", "signer-1", blob[:len(blob)-1]},
		{"trailing byte", k, "wallet-1", "signer-1", append(bytes.Clone(blob), 0)},
		{"empty", k, "wallet-1", "signer-1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.k.Open(tc.wallet, tc.signer, tc.blob)
			if !errors.Is(err, kek.ErrDecrypt) || pt != nil {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", pt, err)
			}
		})
	}
	if _, err := k.Seal("", "s", nil); !errors.Is(err, kek.ErrInvalidArgument) {
		t.Fatalf("empty wallet id: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	created, err := kek.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != kek.KeySize {
		t.Fatalf("created file mode %v size %d", fi.Mode(), fi.Size())
	}
	loaded, err := kek.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := created.Seal("w", "s", []byte("share"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.Open("w", "s", blob); err != nil {
		t.Fatalf("loaded KEK differs from created one: %v", err)
	}
	if _, err := kek.Create(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over existing file: %v", err)
	}
	// Symlinks are followed (secret mounts use them).
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := kek.Load(link); err != nil {
		t.Fatalf("load through symlink: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask may have narrowed it
			t.Fatal(err)
		}
		return p
	}
	key := bytes.Repeat([]byte{7}, kek.KeySize)
	tests := []struct {
		name    string
		path    string
		wantErr error
		wantMsg string
	}{
		{"group readable", write("g", key, 0o640), kek.ErrInsecurePermissions, "chmod 600"},
		{"world readable", write("o", key, 0o604), kek.ErrInsecurePermissions, "chmod 600"},
		{"group writable", write("gw", key, 0o620), kek.ErrInsecurePermissions, "chmod 600"},
		{"short", write("short", key[:31], 0o600), kek.ErrInvalidKey, ""},
		{"long", write("long", append(bytes.Clone(key), '\n'), 0o600), kek.ErrInvalidKey, ""},
		{"empty", write("empty", nil, 0o600), kek.ErrInvalidKey, ""},
		{"directory", dir, nil, ""},
		{"missing", filepath.Join(dir, "missing"), os.ErrNotExist, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kek.Load(tc.path)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && !bytes.Contains([]byte(err.Error()), []byte(tc.wantMsg)) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.wantMsg)
			}
		})
	}
	if _, err := kek.New(key[:16]); !errors.Is(err, kek.ErrInvalidKey) {
		t.Fatalf("New with short key: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	k, err := kek.New(bytes.Repeat([]byte{9}, kek.KeySize))
	if err != nil {
		f.Fatal(err)
	}
	for _, pt := range [][]byte{nil, []byte("share"), make([]byte, 200)} {
		blob, err := k.Seal("w", "s", pt)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
	}
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, blob []byte) {
		pt, err := k.Open("w", "s", blob)
		if err != nil {
			if !errors.Is(err, kek.ErrDecrypt) || pt != nil {
				t.Fatalf("Open = %v, %v", pt, err)
			}
			return
		}
		// Anything that opens must be a genuine blob: re-opening it under
		// another binding must fail.
		if _, err := k.Open("w2", "s", blob); err == nil {
			t.Fatal("blob opens under two bindings")
		}
	})
}
