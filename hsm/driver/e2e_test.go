package driver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/server/jobs"
)

// TestEndToEnd creates an HSM wallet and two signatures through the wallet
// API, served by a driver on SoftHSM over mTLS, and checks the results with
// implementations that share no code with the signing path.
func TestEndToEnd(t *testing.T) {
	cfgs, material := tokens(t, "e2e")
	d := deploy(t, db.SQLite, jobs.Config{}, cfgs)
	dataDir := t.TempDir()
	p := d.startDriver(t, driverOpts{hsm: cfgs[0], dataDir: dataDir})

	w := d.activeWallet(t)
	pub := w.GetPublicKey()
	if w.GetBackend() != walletv1.Backend_BACKEND_HSM || len(pub) != 33 || w.GetAddresses().GetEthereum() == "" {
		t.Fatalf("wallet = %v", w)
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("hash", func(t *testing.T) {
		hash := sha256.Sum256([]byte("pay 1 BTC"))
		sg := d.signed(t, &walletv1.CreateSignatureRequest{WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hash[:]}})
		res := sg.GetResult()
		// go-ethereum (libsecp256k1): (r, s) over the hash, and low S.
		if err := ethtest.VerifyHash(pub, hash[:], res.GetR(), res.GetS()); err != nil {
			t.Fatalf("go-ethereum VerifyHash: %v", err)
		}
		// go-ethereum recovers the wallet's address from the 65-byte form.
		if addr, err := ethtest.RecoverAddress(hash[:], res.GetEthereum()); err != nil || addr != w.GetAddresses().GetEthereum() {
			t.Fatalf("RecoverAddress = %s, %v; want %s", addr, err, w.GetAddresses().GetEthereum())
		}
		// decred: the DER encoding parses and verifies.
		der, err := ecdsa.ParseDERSignature(res.GetDer())
		if err != nil || !der.Verify(hash[:], pk) {
			t.Fatalf("DER signature does not verify (%v)", err)
		}
	})
	t.Run("eip191", func(t *testing.T) {
		msg := "Sign in to example.com, nonce 42"
		sg := d.signed(t, &walletv1.CreateSignatureRequest{WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Message{Message: msg}})
		if err := ethtest.VerifyPersonalSign([]byte(msg), sg.GetResult().GetEthereum(), w.GetAddresses().GetEthereum()); err != nil {
			t.Fatalf("go-ethereum VerifyPersonalSign: %v", err)
		}
	})

	t.Run("driver database holds only wrapped keys", func(t *testing.T) {
		for range 3 {
			d.activeWallet(t)
		}
		checkOnlyWrappedKeys(t, p.Keys, material, dataDir)
	})
}

// checkOnlyWrappedKeys proves the driver database holds no private key in
// clear. The test imported the master key, so it knows it (a deployment
// would not) and can undo AES-KWP itself: every blob must decrypt under the
// master key to a PKCS#8 key whose scalar is the wallet's private key; and
// neither that scalar nor any PKCS#8 or SEC1 private key structure may occur
// anywhere in the database files, at any offset.
func checkOnlyWrappedKeys(t *testing.T, keys *driver.KeyStore, material []byte, dataDir string) {
	t.Helper()
	ctx := context.Background()
	rows, err := keys.DB().QueryxContext(ctx, `SELECT * FROM wrapped_keys`)
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := rows.Columns()
	if want := []string{"wallet_id", "public_key", "wrapped", "master_key_fingerprint", "created_at", "attestation_key_id", "attestation"}; !slices.Equal(cols, want) {
		t.Fatalf("wrapped_keys columns = %v, want %v", cols, want)
	}
	var scalars [][]byte
	for rows.Next() {
		var k struct {
			WalletID    string `db:"wallet_id"`
			PublicKey   []byte `db:"public_key"`
			Wrapped     []byte `db:"wrapped"`
			Fingerprint string `db:"master_key_fingerprint"`
			CreatedAt   int64  `db:"created_at"`
			AttestKeyID []byte `db:"attestation_key_id"` // public: a hash of a public key
			Attestation []byte `db:"attestation"`        // public: a signature
		}
		if err := rows.StructScan(&k); err != nil {
			t.Fatal(err)
		}
		scalar := hsmtest.UnwrapPKCS8Scalar(t, material, k.Wrapped)
		priv := secp256k1.PrivKeyFromBytes(scalar)
		if !bytes.Equal(priv.PubKey().SerializeCompressed(), k.PublicKey) {
			t.Fatalf("wallet %s: the wrapped key is not the wallet's key", k.WalletID)
		}
		if bytes.Contains(k.Wrapped, scalar) {
			t.Fatalf("wallet %s: the scalar appears inside the wrapped blob", k.WalletID)
		}
		scalars = append(scalars, scalar)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(scalars) < 4 {
		t.Fatalf("%d wrapped keys, want at least 4", len(scalars))
	}
	// Every byte the database wrote: the file, its WAL and shared memory.
	files, _ := filepath.Glob(filepath.Join(dataDir, "hsm-driver.db*"))
	if len(files) == 0 {
		t.Fatal("no driver database files found")
	}
	pkcs8Prefix := []byte{0x02, 0x01, 0x00, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01} // version 0, id-ecPublicKey
	sec1Prefix := []byte{0x02, 0x01, 0x01, 0x04, 0x20}                                                        // ECPrivateKey version 1, 32-byte key
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range scalars {
			if bytes.Contains(raw, s) {
				t.Fatalf("%s contains the private scalar of wallet %d in clear", filepath.Base(f), i)
			}
		}
		if bytes.Contains(raw, pkcs8Prefix) || bytes.Contains(raw, sec1Prefix) {
			t.Fatalf("%s contains a PKCS#8 or SEC1 EC private key structure", filepath.Base(f))
		}
	}
}

func TestStartupErrors(t *testing.T) {
	cfgs, _ := tokens(t, "startup-ok")
	module, _, pin := hsmtest.NewToken(t, "startup-nokey")
	_, _, noAttestPIN := hsmtest.NewToken(t, "startup-noattest")
	noAttest := hsm.Config{ModulePath: module, TokenLabel: "startup-noattest", PIN: noAttestPIN}
	if h, err := hsm.OpenToken(context.Background(), noAttest); err != nil {
		t.Fatal(err)
	} else if err := errors.Join(h.InitMasterKey(context.Background()), h.Close()); err != nil {
		t.Fatal(err)
	}
	ok := cfgs[0]
	base := driver.Config{NodeURL: "https://127.0.0.1:1", TLSCert: "x", TLSKey: "x", NodeCA: "x", DataDir: t.TempDir()}
	tests := []struct {
		name string
		edit func(c *driver.Config)
		want []string
	}{
		{"missing module", func(c *driver.Config) { c.HSM = ok; c.HSM.ModulePath = "/nonexistent/libpkcs11.so" }, []string{"PKCS#11 module", "/nonexistent/libpkcs11.so"}},
		{"unknown token", func(c *driver.Config) { c.HSM = ok; c.HSM.TokenLabel = "no-such-token" }, []string{"token not found", "no-such-token"}},
		{"wrong PIN", func(c *driver.Config) { c.HSM = ok; c.HSM.PIN = "wrong-pin-1234" }, []string{"wrong PIN", "SIGIL_HSM_PIN"}},
		{"no master key", func(c *driver.Config) { c.HSM.ModulePath, c.HSM.TokenLabel, c.HSM.PIN = module, "startup-nokey", pin }, []string{"no master key", "init-master-key"}},
		{"no attestation key", func(c *driver.Config) { c.HSM = noAttest }, []string{"no attestation key", "init-attestation-key", "--hsm-attestation-key"}},
		{"no PIN", func(c *driver.Config) { c.HSM = ok; c.HSM.PIN = "" }, []string{"--pin-file", "SIGIL_HSM_PIN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			p, err := driver.Open(context.Background(), cfg)
			if err == nil {
				_ = p.Close()
				t.Fatal("driver started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), cfg.HSM.PIN) && cfg.HSM.PIN != "" {
				t.Errorf("error %q contains the PIN", err)
			}
		})
	}
}
