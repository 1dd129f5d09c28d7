package driver_test

import (
	"context"
	"crypto/ecdsa"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"google.golang.org/protobuf/types/known/durationpb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server/jobs"
)

// TestKeyAttestation runs HSM key attestation on SoftHSM2 against a
// coordinator that pins one token's attestation key:
//   - a driver on that token makes keys the coordinator accepts, and stores
//     the attestation with the wrapped key;
//   - a client holding a driver certificate but no HSM, completing a keygen
//     job with a public key it knows (the attack), is refused and the
//     wallet fails without ever being active;
//   - a real driver on another token, whose attestation key is not pinned,
//     is refused the same way.
func TestKeyAttestation(t *testing.T) {
	cfgs, _ := tokens(t, "att-pinned", "att-rogue")
	d := deploy(t, db.SQLite, jobs.Config{}, cfgs[:1], "driver-y")
	ctx := context.Background()

	t.Run("attested", func(t *testing.T) {
		p, stop := d.startDriverStop(t, driverOpts{hsm: cfgs[0]})
		defer stop()
		w := d.activeWallet(t)
		stored, err := p.Keys.Get(ctx, w.GetId())
		if err != nil {
			t.Fatal(err)
		}
		v, err := attest.NewVerifier([]*ecdsa.PublicKey{p.AttestationKey})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(w.GetId(), w.GetPublicKey(), stored.AttestationKeyID, stored.Attestation); err != nil {
			t.Fatalf("the stored attestation does not verify: %v", err)
		}
	})

	t.Run("stolen driver certificate", func(t *testing.T) {
		id := d.newWallet(t)
		c := driverv1connect.NewDriverServiceClient(d.env.NodeClient(t, "driver-y"), d.node.URL)
		resp, err := c.ClaimJob(ctx, connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(10 * time.Second)}))
		if err != nil || resp.Msg.GetJob().GetWalletId() != id {
			t.Fatalf("ClaimJob = %v, %v; want the keygen job of %s", resp, err, id)
		}
		job := resp.Msg.GetJob()
		known := secp256k1.PrivKeyFromBytes([]byte{1}).PubKey() // private key 1, as in the review
		_, err = c.CompleteJob(ctx, connect.NewRequest(&driverv1.CompleteJobRequest{
			JobId: job.GetId(), LeaseId: job.GetLeaseId(),
			Result: &driverv1.CompleteJobRequest_Keygen{Keygen: &driverv1.KeygenJobResult{PublicKey: known.SerializeCompressed()}},
		}))
		if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "not attested") {
			t.Fatalf("unattested keygen result: %v, want PermissionDenied saying it is not attested", err)
		}
		d.wantFailed(t, id, "not attested")
	})

	t.Run("unpinned HSM", func(t *testing.T) {
		_, stop := d.startDriverStop(t, driverOpts{name: "driver-y", hsm: cfgs[1]})
		defer stop()
		id := d.newWallet(t)
		d.wantFailed(t, id, "does not pin")
	})
}

// newWallet asks the API for an HSM wallet and returns its id.
func (d *deployment) newWallet(t *testing.T) string {
	t.Helper()
	resp, err := d.api.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.GetWallet().GetId()
}

// wantFailed waits for wallet id to fail with a reason containing reason,
// and checks it never had a key.
func (d *deployment) wantFailed(t *testing.T, id, reason string) {
	t.Helper()
	var w *walletv1.Wallet
	waitFor(t, 30*time.Second, "wallet "+id+" failed", func() bool {
		got, err := d.api.GetWallet(context.Background(), connect.NewRequest(&walletv1.GetWalletRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		w = got.Msg.GetWallet()
		if w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
			t.Fatalf("wallet %s became active with key %x", id, w.GetPublicKey())
		}
		return w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_FAILED
	})
	if !strings.Contains(w.GetFailureReason(), reason) || len(w.GetPublicKey()) != 0 {
		t.Fatalf("wallet %s failed with %q (key %x), want a reason containing %q and no key", id, w.GetFailureReason(), w.GetPublicKey(), reason)
	}
}
