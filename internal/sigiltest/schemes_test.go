package sigiltest_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/btcutil/base58"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/cluster"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
)

func TestParseKeyScheme(t *testing.T) {
	for in, want := range map[string]walletv1.KeyScheme{
		"": walletv1.KeyScheme_KEY_SCHEME_UNSPECIFIED, "ecdsa": walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1,
		"Schnorr": walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1, "taproot": walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1,
		"ED25519": walletv1.KeyScheme_KEY_SCHEME_ED25519, "KEY_SCHEME_ED25519": walletv1.KeyScheme_KEY_SCHEME_ED25519,
	} {
		if got, err := sigil.ParseKeyScheme(in); err != nil || got != want {
			t.Errorf("ParseKeyScheme(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := sigil.ParseKeyScheme("rsa"); err == nil || !strings.Contains(err.Error(), "ed25519") {
		t.Errorf("rsa: %v", err)
	}
}

// TestSchemesMPC runs the SDK against a coordinator and three signers with
// FROST key generations (milliseconds): a Taproot wallet and its child sign
// hashes that btcd verifies, an Ed25519 wallet signs message bytes that
// crypto/ed25519 verifies.
func TestSchemesMPC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of signers")
	}
	c, err := cluster.Start(context.Background(), cluster.Options{
		Dir: t.TempDir(), Signers: 3, Threshold: 2,
		Server: server.Config{APIAddr: "127.0.0.1:0", NodeAddr: "127.0.0.1:0"},
		Logger: servertest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	token, err := auth.Mint(context.Background(), c.Server.Store(), []auth.Scope{auth.ScopeAdmin}, "sdk test")
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, c.Server.APIURL(), token)
	ctx := t.Context()

	tr, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{KeyScheme: walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1}, sigil.WaitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	child, err := client.CreateWallet(ctx, sigil.CreateWalletOptions{ParentWalletID: tr.GetId(), DerivationPath: "m/1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*walletv1.Wallet{tr, child} {
		hash := make([]byte, 32)
		hash[0] = 1
		s, err := client.SignHash(ctx, w.GetId(), hash, sigil.SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, q, err := address.TaprootTweak(w.GetPublicKey())
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := schnorr.ParsePubKey(q)
		sig, err := schnorr.ParseSignature(s.GetResult().GetSchnorr())
		if err != nil || !sig.Verify(hash, pub) {
			t.Fatalf("%s: btcd rejects the signature: %v", w.GetId(), err)
		}
	}
	var kids []string
	for w, err := range client.Wallets(ctx, sigil.ListOptions{ParentWalletID: tr.GetId()}) {
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, w.GetId())
	}
	if len(kids) != 1 || kids[0] != child.GetId() {
		t.Fatalf("children %v", kids)
	}

	ed, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{KeyScheme: walletv1.KeyScheme_KEY_SCHEME_ED25519}, sigil.WaitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ed.GetAddresses().GetSolana() != base58.Encode(ed.GetPublicKey()) {
		t.Fatalf("Solana address %s", ed.GetAddresses().GetSolana())
	}
	msg := []byte{0, 1, 2, 3}
	s, err := client.SignRawMessage(ctx, ed.GetId(), msg, sigil.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(ed.GetPublicKey(), msg, s.GetResult().GetEd25519()) {
		t.Fatal("crypto/ed25519 rejects the signature")
	}
	if _, err := client.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: ed.GetId(), Hash: make([]byte, 32), RawMessage: msg}); !sigil.IsInvalidArgument(err) {
		t.Fatalf("hash and raw message together: %v", err)
	}
}
