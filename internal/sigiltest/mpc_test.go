package sigiltest_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// TestMPC runs the SDK against a coordinator and three real MPC signers
// (2-of-3): a real distributed key generation, which takes tens of seconds,
// then both kinds of signature.
func TestMPC(t *testing.T) {
	if testing.Short() {
		t.Skip("a real MPC key generation takes tens of seconds")
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

	reads := 0
	var last time.Duration
	w, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: "mpc", Backend: walletv1.Backend_BACKEND_MPC},
		sigil.WaitOptions{Progress: func(_ *walletv1.Wallet, elapsed time.Duration) { reads++; last = elapsed }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MPC key generation: %v, %d reads", last.Round(time.Millisecond), reads)
	if g := w.GetMpcGroup(); g.GetThreshold() != 2 || len(g.GetSigners()) != 3 || len(w.GetPublicKey()) != 33 {
		t.Fatalf("wallet = %v", w)
	}

	msg := "MPC says hello"
	s, err := client.SignMessage(ctx, w.GetId(), msg, sigil.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ethtest.VerifyPersonalSign([]byte(msg), s.GetResult().GetEthereum(), w.GetAddresses().GetEthereum()); err != nil {
		t.Fatalf("VerifyPersonalSign: %v", err)
	}
	hash := sha256.Sum256([]byte("mpc tx"))
	h, err := client.SignHash(ctx, w.GetId(), hash[:], sigil.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ethtest.VerifyHash(w.GetPublicKey(), hash[:], h.GetResult().GetR(), h.GetResult().GetS()); err != nil {
		t.Fatalf("VerifyHash: %v", err)
	}
	ethtest.VerifyDER(t, w.GetPublicKey(), hash[:], h.GetResult().GetDer())
}
