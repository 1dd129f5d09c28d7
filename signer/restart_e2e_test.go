package signer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer"
)

// TestCoordinatorRestartMidCeremony restarts the coordinator while a
// signing and a key generation run. Nothing is left hanging: the signature
// is retried and completes once the signers reconnect; the key generation
// (whose signers lost the protocol state with the old connections) is
// taken over when its lease lapses and starts again, and the wallet
// becomes active, each signer keeping one active share of it.
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
	walletID2 := kg.Msg.GetWallet().GetId()
	w := tc.waitWallet(t, walletID2, 2*time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("interrupted keygen: %v %q", w.GetStatus(), w.GetFailureReason())
	}
	var outcomes []struct {
		State  string `db:"state"`
		Reason string `db:"failure_reason"`
	}
	sdb := tc.Server.Store().DB()
	if err := sdb.SelectContext(ctx, &outcomes, sdb.Rebind(`SELECT state, failure_reason FROM ceremonies WHERE wallet_id = ? ORDER BY attempt`), walletID2); err != nil {
		t.Fatal(err)
	}
	if len(outcomes) != 2 || outcomes[0].State != string(store.CeremonyFailed) || !strings.Contains(outcomes[0].Reason, "restarted") ||
		outcomes[1].State != string(store.CeremonySucceeded) {
		t.Fatalf("key generation attempts: %+v, want the interrupted one failed and one more succeeded", outcomes)
	}
	// Each signer activates its share once it hears the outcome.
	for _, name := range []string{"signer-1", "signer-2", "signer-3"} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			st := signer.ShareState(ctx, tc.Signer(name), walletID2)
			if st == "active" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's share of the new wallet is %q, want active", name, st)
			}
		}
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
