package signer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

// TestCoordinatorRestartMidCeremony restarts the coordinator while a
// signing and a key generation run. Nothing is left hanging: the signature
// is retried and completes once the signers reconnect; the key generation
// fails cleanly (its signers lost the protocol state with the old
// connections) and no signer keeps a share of it.
func TestCoordinatorRestartMidCeremony(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC ceremonies; skipped with -short")
	}
	tc := startCluster(t, 3, 2, true)
	walletID, pub := tc.seedWallet(t, 3, 2)
	ctx := context.Background()

	sig, err := tc.client.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Message{Message: "across a restart"}}))
	if err != nil {
		t.Fatal(err)
	}
	runningSign(t, tc)
	kg, err := tc.client.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "interrupted"}))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		c := openCeremony(t, tc, store.CeremonyKeygen)
		if c != nil && c.State == store.CeremonyRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key generation did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if err := tc.RestartServer(); err != nil {
		t.Fatal(err)
	}

	s := tc.waitSignature(t, sig.Msg.GetSignature().GetId(), 2*time.Minute)
	verifySignature(t, pub, s)
	w := tc.waitWallet(t, kg.Msg.GetWallet().GetId(), time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_FAILED || !strings.Contains(w.GetFailureReason(), "restarted") {
		t.Fatalf("interrupted keygen: %v %q", w.GetStatus(), w.GetFailureReason())
	}
	if open := openCeremony(t, tc, ""); open != nil {
		t.Fatalf("ceremony %s (%s) still open after the restart settled", open.ID, open.State)
	}
}

// openCeremony returns an open ceremony of the kind (any kind when empty).
func openCeremony(t *testing.T, tc *testCluster, kind store.CeremonyKind) *store.Ceremony {
	t.Helper()
	open, err := tc.Server.Store().OpenCeremonies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range open {
		if kind == "" || c.Kind == kind {
			return c
		}
	}
	return nil
}
