package address_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"

	"github.com/sigil-wallet/sigil/internal/address"
)

// TestBitcoinP2TRBIP86 checks the first BIP-86 test vector
// (m/86'/0'/0'/0/0): internal key, output key and address.
func TestBitcoinP2TRBIP86(t *testing.T) {
	internal, _ := hex.DecodeString("cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115")
	_, q, err := address.TaprootTweak(internal)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(q); got != "a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c" {
		t.Fatalf("output key %s", got)
	}
	addr, err := address.BitcoinP2TR(internal, "bc")
	if err != nil {
		t.Fatal(err)
	}
	if addr != "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr" {
		t.Fatalf("address %s", addr)
	}
	// btcd decodes it (bech32m checksum) to the same witness program.
	dec, err := btcutil.DecodeAddress(addr, &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	script, err := txscript.PayToAddrScript(dec)
	if err != nil || !bytes.Equal(script[2:], q) {
		t.Fatalf("btcd reads another program: %x (%v)", script, err)
	}
}

func TestBitcoinP2TRRefusesBadKeys(t *testing.T) {
	for _, k := range [][]byte{nil, make([]byte, 31), make([]byte, 33), bytes.Repeat([]byte{0xff}, 32)} {
		if _, err := address.BitcoinP2TR(k, "bc"); err == nil {
			t.Errorf("accepted %x", k)
		}
	}
}

func TestSolana(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := address.Solana(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := base58.Encode(pub); got != want {
		t.Fatalf("Solana(%x) = %s, btcutil base58 says %s", pub, got, want)
	}
	// The System Program's address is 32 zero bytes.
	if got := address.Base58(make([]byte, 32)); got != "11111111111111111111111111111111" {
		t.Fatalf("zero key: %s", got)
	}
	if _, err := address.Solana(pub[:31]); err == nil {
		t.Fatal("accepted a 31-byte key")
	}
}

func FuzzBase58(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := address.Base58(b), base58.Encode(b); got != want {
			t.Fatalf("Base58(%x) = %s, want %s", b, got, want)
		}
	})
}
