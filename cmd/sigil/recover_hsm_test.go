package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/internal/ids"
)

// TestRecoverHSMWallet: a key generated and wrapped by a real (SoftHSM2)
// HSM under imported master key material is rebuilt offline, with no HSM,
// from a copy of the driver database and the escrowed material (plain, or
// age-encrypted to the recovery recipients); a wrong master key is named as
// such.
func TestRecoverHSMWallet(t *testing.T) {
	t.Cleanup(func() { _ = hsmtest.RemoveAll() })
	ctx := context.Background()
	module, _, pin := hsmtest.NewToken(t, "recover-hsm")
	material, err := hsm.GenerateMasterKeyMaterial()
	if err != nil {
		t.Fatal(err)
	}
	h, err := hsm.OpenToken(ctx, hsm.Config{ModulePath: module, TokenLabel: "recover-hsm", PIN: pin})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ImportMasterKey(ctx, bytes.Clone(material)); err != nil { // it zeroes what it is given
		t.Fatal(err)
	}
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := h.MasterKeyFingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = h.Close()

	driverDir := t.TempDir()
	keysPath := filepath.Join(driverDir, "hsm-driver.db")
	d, err := db.Open(ctx, db.Config{SQLitePath: keysPath})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := driver.OpenKeyStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	walletID := ids.New(ids.Wallet)
	if _, err := keys.Put(ctx, &driver.WrappedKey{WalletID: walletID, PublicKey: pub, Wrapped: wrapped, MasterKeyFingerprint: fp}); err != nil {
		t.Fatal(err)
	}
	_ = d.Close()

	dir := t.TempDir()
	plainMaster := filepath.Join(dir, "master.hex")
	if err := os.WriteFile(plainMaster, []byte(hex.EncodeToString(material)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	identity, rec := identityFile(t, true)
	sealedMaster := filepath.Join(dir, "master-key.age")
	f, err := os.Create(sealedMaster)
	if err != nil {
		t.Fatal(err)
	}
	w, err := age.Encrypt(f, rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(hex.EncodeToString(material) + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	// The wrapped keys go to the backup target too.
	recipients := filepath.Join(dir, "recipients.txt")
	if err := os.WriteFile(recipients, []byte(rec.(fmt.Stringer).String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backups := filepath.Join(dir, "backups")
	res := sigilCLI(t, noEnv, "hsm", "backup-keys", "--data-dir", driverDir, "--backup-recipients", recipients, "--backup-dir", backups)
	if res.code != 0 || !strings.Contains(res.stdout, "backed up the wrapped keys of 1 HSM wallets") {
		t.Fatalf("backup-keys: %d %s %s", res.code, res.stdout, res.stderr)
	}
	stored, err := os.ReadFile(filepath.Join(backups, walletID, "hsm.age"))
	if err != nil || bytes.Contains(stored, wrapped) || bytes.Contains(stored, pub) {
		t.Fatalf("hsm.age: %v (or the wrapped key in clear)", err)
	}

	for _, args := range [][]string{
		{"--hsm-keys-db", keysPath, "--hsm-master-key", plainMaster},
		{"--hsm-keys-db", keysPath, "--hsm-master-key", sealedMaster, "--identity", identity},
		{"--backups", backups, "--hsm-master-key", sealedMaster, "--identity", identity},
	} {
		res := sigilCLI(t, noEnv, append([]string{"recover", "--wallet", walletID, "--reveal-private-key", "--json"}, args...)...)
		if res.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, res.code, res.stderr)
		}
		var out recovered
		if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || out.PrivateKey == nil || out.PublicKey != hex.EncodeToString(pub) {
			t.Fatalf("%v: %s", err, res.stdout)
		}
		key, err := crypto.HexToECDSA(out.PrivateKey.Hex)
		if err != nil {
			t.Fatal(err)
		}
		digest := crypto.Keccak256([]byte("hsm key recovered"))
		sig, err := crypto.Sign(digest, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := ethtest.VerifyHash(pub, digest, sig[:32], sig[32:64]); err != nil {
			t.Fatal(err)
		}
	}
	if res := sigilCLI(t, noEnv, "recover", "--backups", backups, "--identity", identity); res.code != 1 || !strings.Contains(res.stderr, "--hsm-master-key") {
		t.Fatalf("an HSM backup without the master key: %d %q", res.code, res.stderr)
	}
	text := sigilCLI(t, noEnv, "recover", "--hsm-keys-db", keysPath, "--wallet", walletID, "--hsm-master-key", plainMaster)
	if text.code != 0 || !strings.Contains(text.stdout, "Recovered HSM wallet "+walletID) || !strings.Contains(text.stdout, fp) {
		t.Fatalf("text: %d %s %s", text.code, text.stdout, text.stderr)
	}

	otherMaster := filepath.Join(dir, "other.hex")
	if err := os.WriteFile(otherMaster, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	otherIdentity, _ := identityFile(t, true)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--hsm-master-key", otherMaster}, 1, "wrapped under the master key with fingerprint " + fp},
		{[]string{"--hsm-master-key", sealedMaster}, 2, "give the recovery identity with --identity"},
		{[]string{"--hsm-master-key", sealedMaster, "--identity", otherIdentity}, 1, "none of the identities can decrypt it"},
		{[]string{"--hsm-master-key", plainMaster, "--wallet", ids.New(ids.Wallet)}, 1, "no wrapped key for wallet"},
	} {
		args := append([]string{"recover", "--reveal-private-key", "--hsm-keys-db", keysPath, "--wallet", walletID}, tc.args...)
		res := sigilCLI(t, noEnv, args...)
		if res.code != tc.code || !strings.Contains(res.stderr, tc.want) || res.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tc.args, res.code, res.stdout, res.stderr, tc.want)
		}
		if strings.Contains(res.stderr, hex.EncodeToString(material)) {
			t.Error("the master key was printed")
		}
	}
}
