package hsm_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/hsm"
)

func TestInitMasterKeyTwice(t *testing.T) {
	cfg := newConfig(t, "init-twice")
	h := openToken(t, cfg)
	ctx := testContext(t)
	if err := h.InitMasterKey(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.InitMasterKey(ctx); !errors.Is(err, hsm.ErrMasterKeyExists) {
		t.Fatalf("second InitMasterKey: %v, want ErrMasterKeyExists", err)
	}
	// A second handle, which did not create the key, refuses too, and so do
	// imports.
	h2 := openToken(t, cfg)
	if err := h2.InitMasterKey(ctx); !errors.Is(err, hsm.ErrMasterKeyExists) {
		t.Fatalf("InitMasterKey from another handle: %v", err)
	}
	material, _ := hsm.GenerateMasterKeyMaterial()
	if err := h2.ImportMasterKey(ctx, material); !errors.Is(err, hsm.ErrMasterKeyExists) {
		t.Fatalf("ImportMasterKey over existing key: %v", err)
	}
	if n, err := h2.TokenObjectCount(ctx); err != nil || n != 1 {
		t.Fatalf("token objects = %d, %v; want only the master key", n, err)
	}
}

func TestImportMasterKeyLength(t *testing.T) {
	h := openToken(t, newConfig(t, "import-len"))
	material := bytes.Repeat([]byte{7}, 16)
	if err := h.ImportMasterKey(testContext(t), material); !errors.Is(err, hsm.ErrInvalidInput) {
		t.Fatalf("ImportMasterKey(16 bytes): %v", err)
	}
	if !bytes.Equal(material, make([]byte, 16)) {
		t.Fatal("material not zeroed after a rejected import")
	}
}

// The same material imported into two tokens lets either sign with blobs the
// other wrapped, which is what lets any driver take any job.
func TestImportedKeyIsSharedAcrossTokens(t *testing.T) {
	ctx := testContext(t)
	// All tokens exist before any handle opens: SoftHSM lists tokens when
	// the module is initialised (see package hsmtest).
	cfgA, cfgB, cfgC := newConfig(t, "token-a"), newConfig(t, "token-b"), newConfig(t, "token-c")
	a, b := openToken(t, cfgA), openToken(t, cfgB)
	material, err := hsm.GenerateMasterKeyMaterial()
	if err != nil {
		t.Fatal(err)
	}
	copyB := bytes.Clone(material)
	if err := a.ImportMasterKey(ctx, material); err != nil {
		t.Fatal(err)
	}
	if err := b.ImportMasterKey(ctx, copyB); err != nil {
		t.Fatal(err)
	}
	fa, err := a.MasterKeyFingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := b.MasterKeyFingerprint(ctx)
	if fa != fb || len(fa) != 16 {
		t.Fatalf("fingerprints %q and %q, want equal 16-hex-digit values", fa, fb)
	}

	pub, wrapped, err := a.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("cross-HSM"))
	sig, err := b.Sign(ctx, wrapped, pub, digest[:])
	if err != nil {
		t.Fatalf("token B signing a blob wrapped on token A: %v", err)
	}
	pk, _ := secp256k1.ParsePubKey(pub)
	checkSignature(t, sig, pk, digest[:])

	// A token with a different master key rejects the blob with a clear
	// error rather than failing obscurely.
	c := openToken(t, cfgC)
	if err := c.InitMasterKey(ctx); err != nil {
		t.Fatal(err)
	}
	if fc, _ := c.MasterKeyFingerprint(ctx); fc == fa {
		t.Fatal("independent master keys share a fingerprint")
	}
	if _, err := c.Sign(ctx, wrapped, pub, digest[:]); !errors.Is(err, hsm.ErrWrappedKey) {
		t.Fatalf("signing under a different master key: %v, want ErrWrappedKey", err)
	}
}

// A key under the master key label that could leave the HSM or decrypt
// blobs is refused at startup rather than used.
func TestUnsafeMasterKeyRefused(t *testing.T) {
	cfg := newConfig(t, "unsafe-mk")
	h, err := hsm.OpenToken(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CreateUnsafeMasterKey(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h, err = hsm.Open(testContext(t), cfg)
	if err == nil {
		_ = h.Close()
		t.Fatal("Open accepted an extractable master key")
	}
	if !errors.Is(err, hsm.ErrMasterKeyPolicy) {
		t.Fatalf("Open: %v, want ErrMasterKeyPolicy", err)
	}
	for _, want := range []string{"CKA_SENSITIVE", "CKA_EXTRACTABLE", "CKA_DECRYPT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
