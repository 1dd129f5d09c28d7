package backup_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// keyPair is an operator's recovery identity and its recipient.
type keyPair struct {
	identity  age.Identity
	recipient age.Recipient
}

func x25519(t *testing.T) keyPair {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{id, id.Recipient()}
}

func hybrid(t *testing.T) keyPair {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{id, id.Recipient()}
}

// fixtureWallet is a test key's shares, each as a signer stores it.
type fixtureWallet struct {
	id, keyID string
	n, t      int
	pub       []byte
	shares    map[string][]byte // signer -> cmp.Config encoding
}

func newFixtureWallet(t *testing.T, n, threshold int) *fixtureWallet {
	t.Helper()
	cfgs := mpctest.Configs(t, n, threshold)
	w := &fixtureWallet{id: ids.New(ids.Wallet), keyID: ids.New(ids.Ceremony), n: n, t: threshold, shares: map[string][]byte{}}
	for id, cfg := range cfgs {
		b, err := cfg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		w.shares[string(id)] = b
		if w.pub == nil {
			if w.pub, err = mpc.PublicKey(cfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func (w *fixtureWallet) encrypt(t *testing.T, signer string, recipients ...age.Recipient) []byte {
	t.Helper()
	file, err := backup.Encrypt(recipients, w.id, signer, w.keyID, w.shares[signer], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// writeAll stores every share's backup in a folder as the uploader does.
func (w *fixtureWallet) writeAll(t *testing.T, dir string, recipients ...age.Recipient) {
	t.Helper()
	for signer := range w.shares {
		if err := (backup.Dir{Root: dir}).Put(context.Background(), backup.Name(w.id, signer), w.encrypt(t, signer, recipients...)); err != nil {
			t.Fatal(err)
		}
	}
}

// secrets returns encodings of a share's secret parts that must never be
// found in clear: the whole share and its ECDSA secret scalar, raw, hex and
// base64.
func secrets(t *testing.T, n, threshold int, signer string) [][]byte {
	t.Helper()
	cfg := mpctest.Configs(t, n, threshold)[party.ID(signer)]
	whole, err := cfg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := cfg.ECDSA.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, b := range [][]byte{whole[:64], whole[len(whole)/2 : len(whole)/2+64], scalar} {
		out = append(out, b, []byte(hex.EncodeToString(b)), []byte(base64.StdEncoding.EncodeToString(b)))
	}
	return out
}

func TestEncryptDecrypt(t *testing.T) {
	w := newFixtureWallet(t, 3, 2)
	for name, kp := range map[string]keyPair{"x25519": x25519(t), "hybrid-mlkem768-x25519": hybrid(t)} {
		t.Run(name, func(t *testing.T) {
			file := w.encrypt(t, "signer-2", kp.recipient)
			for _, s := range secrets(t, 3, 2, "signer-2") {
				if bytes.Contains(file, s) {
					t.Fatal("the backup file holds the share in clear")
				}
			}
			sh, err := backup.Decrypt(file, []age.Identity{kp.identity}, w.id+"/signer-2.age")
			if err != nil {
				t.Fatal(err)
			}
			if sh.WalletID != w.id || sh.Signer != "signer-2" || sh.Threshold != 2 || sh.KeyID != w.keyID ||
				!slices.Equal(sh.Group, []string{"signer-1", "signer-2", "signer-3"}) || sh.PublicKey != hex.EncodeToString(w.pub) ||
				sh.KeyScheme != backup.KeySchemeSecp256k1 || string(sh.Config.ID) != "signer-2" {
				t.Fatalf("header: %+v", sh.Header)
			}
		})
	}
}

func TestEncryptRefusesAnotherSignersShare(t *testing.T) {
	w := newFixtureWallet(t, 3, 2)
	if _, err := backup.Encrypt([]age.Recipient{x25519(t).recipient}, w.id, "signer-1", w.keyID, w.shares["signer-2"], time.Now()); err == nil {
		t.Fatal("signer-2's share was backed up as signer-1's")
	}
}

func TestDecryptRefuses(t *testing.T) {
	w := newFixtureWallet(t, 3, 2)
	kp := x25519(t)
	file := w.encrypt(t, "signer-1", kp.recipient)
	name := w.id + "/signer-1.age"
	altered := bytes.Clone(file)
	altered[len(altered)-40] ^= 1
	alteredStanza := bytes.Clone(file)
	alteredStanza[60] ^= 1
	alteredMAC := bytes.Clone(file)
	alteredMAC[bytes.Index(file, []byte("\n--- "))+6] ^= 1
	for _, tc := range []struct {
		name     string
		file     []byte
		identity age.Identity
		fileName string
		want     error
	}{
		{"wrong identity", file, x25519(t).identity, name, backup.ErrWrongIdentity},
		{"wrong kind of identity", file, hybrid(t).identity, name, backup.ErrWrongIdentity},
		{"truncated", file[:len(file)-20], kp.identity, name, backup.ErrDamaged},
		{"truncated to the header", file[:100], kp.identity, name, backup.ErrDamaged},
		{"empty", nil, kp.identity, name, backup.ErrDamaged},
		{"altered payload", altered, kp.identity, name, backup.ErrDamaged},
		// An altered stanza either no longer parses or no longer unwraps.
		{"altered recipient stanza", alteredStanza, kp.identity, name, errStanza},
		{"altered header MAC", alteredMAC, kp.identity, name, backup.ErrDamaged},
		{"renamed to another signer", file, kp.identity, w.id + "/signer-2.age", backup.ErrInconsistent},
		{"moved to another wallet", file, kp.identity, ids.New(ids.Wallet) + "/signer-1.age", backup.ErrInconsistent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh, err := backup.Decrypt(tc.file, []age.Identity{tc.identity}, tc.fileName)
			if errors.Is(tc.want, errStanza) && (errors.Is(err, backup.ErrWrongIdentity) || errors.Is(err, backup.ErrDamaged)) {
				return
			}
			if !errors.Is(err, tc.want) || sh != nil {
				t.Fatalf("got %v, %v; want %v", sh, err, tc.want)
			}
		})
	}
}

var errStanza = errors.New("ErrWrongIdentity or ErrDamaged")

func TestRecover(t *testing.T) {
	for _, shape := range []struct{ n, t int }{{3, 2}, {5, 3}} {
		t.Run(fmt.Sprintf("%dof%d", shape.t, shape.n), func(t *testing.T) {
			w := newFixtureWallet(t, shape.n, shape.t)
			kp := hybrid(t)
			dir := t.TempDir()
			w.writeAll(t, dir, kp.recipient)
			all, err := backup.Read(context.Background(), []backup.Location{{Store: backup.Dir{Root: dir}, Where: dir}}, []age.Identity{kp.identity}, "")
			if err != nil || len(all) != shape.n {
				t.Fatalf("read %d backups: %v", len(all), err)
			}
			// Every quorum of t rebuilds the same key.
			for _, subset := range subsets(len(all), shape.t) {
				var use []*backup.Share
				for _, i := range subset {
					use = append(use, all[i])
				}
				rec, err := backup.Recover(use)
				if err != nil {
					t.Fatalf("%v: %v", subset, err)
				}
				if !bytes.Equal(rec.Key.PubKey().SerializeCompressed(), w.pub) || rec.WalletID != w.id {
					t.Fatalf("%v: rebuilt another key", subset)
				}
				rec.Key.Zero()
			}
			_, err = backup.Recover(all[:shape.t-1])
			if !errors.Is(err, backup.ErrTooFew) {
				t.Fatalf("t-1 backups: %v", err)
			}
			t.Logf("t-1: %v", err)
		})
	}
}

func TestRecoverRefusesMismatches(t *testing.T) {
	kp := x25519(t)
	a, b := newFixtureWallet(t, 3, 2), newFixtureWallet(t, 5, 3)
	read := func(files map[string][]byte) []*backup.Share {
		t.Helper()
		var out []*backup.Share
		for name, f := range files {
			sh, err := backup.Decrypt(f, []age.Identity{kp.identity}, name)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sh)
		}
		return out
	}
	_, err := backup.Recover(read(map[string][]byte{
		a.id + "/signer-1.age": a.encrypt(t, "signer-1", kp.recipient),
		b.id + "/signer-2.age": b.encrypt(t, "signer-2", kp.recipient),
	}))
	if !errors.Is(err, backup.ErrManyWallet) {
		t.Fatalf("two wallets: %v", err)
	}
	// The same wallet id on shares of two different keys.
	b.id = a.id
	_, err = backup.Recover(read(map[string][]byte{
		a.id + "/signer-1.age": a.encrypt(t, "signer-1", kp.recipient),
		b.id + "/signer-2.age": b.encrypt(t, "signer-2", kp.recipient),
	}))
	if !errors.Is(err, backup.ErrMismatch) {
		t.Fatalf("two keys under one wallet id: %v", err)
	}
	// The same key from two key generations (key ids).
	c := *a
	c.keyID = ids.New(ids.Ceremony)
	_, err = backup.Recover(read(map[string][]byte{
		a.id + "/signer-1.age":   a.encrypt(t, "signer-1", kp.recipient),
		a.id + "/x/signer-2.age": c.encrypt(t, "signer-2", kp.recipient),
	}))
	if !errors.Is(err, backup.ErrMismatch) {
		t.Fatalf("two key ids: %v", err)
	}
}

func TestReadRefusesADamagedFile(t *testing.T) {
	w := newFixtureWallet(t, 3, 2)
	kp := x25519(t)
	dir := t.TempDir()
	w.writeAll(t, dir, kp.recipient)
	p := filepath.Join(dir, w.id, "signer-3.age")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = backup.Read(context.Background(), []backup.Location{{Store: backup.Dir{Root: dir}, Where: dir}}, []age.Identity{kp.identity}, w.id)
	if !errors.Is(err, backup.ErrDamaged) {
		t.Fatalf("a truncated file among good ones: %v", err)
	}
}

func TestLoadRecipients(t *testing.T) {
	dir := t.TempDir()
	write := func(lines ...string) string {
		p := filepath.Join(dir, fmt.Sprint(len(lines), time.Now().UnixNano()))
		var b bytes.Buffer
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	x, h := x25519(t).recipient.(fmt.Stringer).String(), hybrid(t).recipient.(fmt.Stringer).String()
	for _, tc := range []struct {
		name  string
		lines []string
		ok    bool
	}{
		{"x25519", []string{"# ops", x}, true},
		{"hybrid", []string{h, hybrid(t).recipient.(fmt.Stringer).String()}, true},
		{"mixed hybrid and classic", []string{h, x}, false},
		{"empty", []string{"# nothing"}, false},
		{"an identity by mistake", []string{x25519(t).identity.(fmt.Stringer).String()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fp, err := backup.LoadRecipients(write(tc.lines...))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
			if err != nil && bytes.Contains([]byte(err.Error()), []byte("AGE-SECRET")) {
				t.Fatalf("the error shows a secret key: %v", err)
			}
			if tc.ok && fp == "" {
				t.Fatal("no fingerprint")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  backup.Config
		want string
	}{
		{backup.Config{Dir: "d"}, "--backup-recipients is required"},
		{backup.Config{RecipientsFile: "r"}, "needs a target"},
		{backup.Config{RecipientsFile: "r", Dir: "d", S3: backup.S3Config{Bucket: "b"}}, "choose one"},
		{backup.Config{RecipientsFile: "r", Dir: "d", S3: backup.S3Config{Prefix: "p"}}, "need --backup-s3-bucket"},
	} {
		if err := tc.cfg.Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (backup.Config{RecipientsFile: "r", S3: backup.S3Config{Bucket: "b", Endpoint: "http://x"}}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseS3URL(t *testing.T) {
	c, err := backup.ParseS3URL("s3://bucket/a/b/")
	if err != nil || c.Bucket != "bucket" || c.Prefix != "a/b" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"bucket/a", "s3:///a", "http://b/a"} {
		if _, err := backup.ParseS3URL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// subsets returns every k-subset of 0..n-1.
func subsets(n, k int) [][]int {
	if k == 0 {
		return [][]int{nil}
	}
	var out [][]int
	for i := k - 1; i < n; i++ {
		for _, s := range subsets(i, k-1) {
			out = append(out, append(s, i))
		}
	}
	return out
}

func TestWrappedKeyBackup(t *testing.T) {
	kp := x25519(t)
	w := newFixtureWallet(t, 3, 2) // for a valid public key
	wrapped := bytes.Repeat([]byte{0x5a}, 40)
	file, err := backup.EncryptWrapped([]age.Recipient{kp.recipient}, w.id, w.pub, wrapped, "00112233aabbccdd", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(file, wrapped) {
		t.Fatal("the wrapped key is in clear")
	}
	sh, err := backup.Decrypt(file, []age.Identity{kp.identity}, w.id+"/hsm.age")
	if err != nil {
		t.Fatal(err)
	}
	if sh.Protocol != backup.ProtocolHSMWrapped || sh.KeyID != "00112233aabbccdd" || !bytes.Equal(sh.Wrapped, wrapped) || sh.Config != nil {
		t.Fatalf("%+v", sh)
	}
	if _, err := backup.Recover([]*backup.Share{sh}); !errors.Is(err, backup.ErrNeedsMasterKey) {
		t.Fatalf("Recover of an HSM backup: %v", err)
	}
	if _, err := backup.Decrypt(file, []age.Identity{kp.identity}, w.id+"/signer-1.age"); !errors.Is(err, backup.ErrInconsistent) {
		t.Fatalf("renamed: %v", err)
	}
	if _, err := backup.EncryptWrapped([]age.Recipient{kp.recipient}, w.id, w.pub, wrapped[:13], "00", time.Now()); err == nil {
		t.Fatal("a 13-byte wrapped key was backed up")
	}
}
