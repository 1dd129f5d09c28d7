package signer_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer"
)

// coordinatorPresig is a row of the coordinator's pool.
type coordinatorPresig struct {
	ID      string `db:"id"`
	Signers string `db:"signers"`
	State   string `db:"state"`
	UsedBy  string `db:"used_by"`
}

func (tc *testCluster) pool(t *testing.T) []coordinatorPresig {
	t.Helper()
	var rows []coordinatorPresig
	if err := tc.Server.Store().DB().SelectContext(context.Background(), &rows,
		`SELECT id, signers, state, used_by FROM presignatures ORDER BY created_at`); err != nil {
		t.Fatal(err)
	}
	return rows
}

// waitPool waits until the coordinator's pool holds ready presignatures.
func (tc *testCluster) waitPool(t *testing.T, ready int, timeout time.Duration) []coordinatorPresig {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		var out []coordinatorPresig
		for _, p := range tc.pool(t) {
			if p.State == store.PresignatureReady {
				out = append(out, p)
			}
		}
		if len(out) >= ready {
			return out
		}
		select {
		case <-deadline:
			t.Fatalf("the pool has %d ready presignatures after %s, want %d", len(out), timeout, ready)
		case <-tick.C:
		}
	}
}

// signerPresigs reads every presignature row of one signer's database.
func (tc *testCluster) signerPresigs(t *testing.T, name string) map[string][2]string {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(tc.SignerDir(name), "shares.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var rows []struct {
		ID     string `db:"id"`
		State  string `db:"state"`
		UsedBy string `db:"used_by"`
	}
	if err := d.SelectContext(ctx, &rows, `SELECT id, state, used_by FROM presignatures`); err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	for _, r := range rows {
		out[r.ID] = [2]string{r.State, r.UsedBy}
	}
	return out
}

// checkSingleUse inspects every signer's database: a presignature is used
// by one signing ceremony at most, the same one at every signer, and one
// the coordinator gave out is never ready again anywhere.
func (tc *testCluster) checkSingleUse(t *testing.T) {
	t.Helper()
	given := map[string]string{}
	for _, p := range tc.pool(t) {
		if p.State == store.PresignatureUsed {
			given[p.ID] = p.UsedBy
		}
	}
	for _, name := range tc.Names {
		for id, row := range tc.signerPresigs(t, name) {
			state, usedBy := row[0], row[1]
			want, gone := given[id]
			switch {
			case state == "used" && usedBy != want:
				t.Errorf("%s used presignature %s for %s, the coordinator gave it to %q", name, id, usedBy, want)
			case state == "ready" && gone:
				t.Errorf("%s still holds presignature %s ready after it was given to %s", name, id, want)
			}
		}
	}
}

// TestPresignaturePool runs signatures through the whole stack with a
// presignature pool: the online path signs (checked with go-ethereum and
// OpenSSL), a signer that crashes after marking its presignature used
// never uses it again and the request completes with the full protocol,
// and a request with no fitting presignature falls back to it too.
func TestPresignaturePool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC presigning and signing ceremonies (seconds each); skipped with -short")
	}
	opts := cluster.Options{Signers: 3, Threshold: 2, DeferSigners: true}
	opts.Server.PresignPool = 1
	tc := startClusterOpts(t, opts)
	walletID, pub := tc.seedWallet(t, 3, 2)
	ctx := context.Background()

	// The online path.
	first := tc.waitPool(t, 1, 2*time.Minute)[0]
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Message{Message: "one round"}}, time.Minute)
	verifySignature(t, pub, s)
	used := tc.presigOf(t, first.ID)
	if used.State != store.PresignatureUsed || tc.ceremonySignature(t, used.UsedBy) != s.GetId() {
		t.Fatalf("presignature %s is %s by %q; want used by the signing of %s", first.ID, used.State, used.UsedBy, s.GetId())
	}

	// A crash between marking the presignature used and the online round.
	second := tc.waitPool(t, 1, 2*time.Minute)[0]
	victim := strings.Split(second.Signers, ",")[0]
	marked := make(chan struct{})
	signer.OnPresignatureUsed(tc.Signer(victim), func(ctx context.Context) error {
		close(marked)
		<-ctx.Done() // the process dies here
		return ctx.Err()
	})
	res, err := tc.client.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(7)}}))
	if err != nil {
		t.Fatal(err)
	}
	<-marked
	tc.StopSigner(victim)
	s = tc.waitSignature(t, res.Msg.GetSignature().GetId(), 2*time.Minute)
	verifySignature(t, pub, s)
	if row := tc.signerPresigs(t, victim)[second.ID]; row[0] != "used" {
		t.Fatalf("%s's part of presignature %s is %q after the crash, want used", victim, second.ID, row[0])
	}
	if err := tc.StartSigner(victim); err != nil {
		t.Fatal(err)
	}
	tc.checkSingleUse(t)

	// No fitting presignature: one of the quorum is down.
	third := tc.waitPool(t, 1, 2*time.Minute)[0]
	down := strings.Split(third.Signers, ",")[1]
	tc.StopSigner(down)
	s = tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(8)}}, 2*time.Minute)
	verifySignature(t, pub, s)
	if p := tc.presigOf(t, third.ID); p.State != store.PresignatureReady {
		t.Fatalf("presignature %s of an incomplete quorum was %s", third.ID, p.State)
	}
	if err := tc.StartSigner(down); err != nil {
		t.Fatal(err)
	}
	tc.checkSingleUse(t)
}

func (tc *testCluster) presigOf(t *testing.T, id string) coordinatorPresig {
	t.Helper()
	for _, p := range tc.pool(t) {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no presignature %s at the coordinator", id)
	return coordinatorPresig{}
}

func (tc *testCluster) ceremonySignature(t *testing.T, ceremonyID string) string {
	t.Helper()
	c, err := tc.Server.Store().GetCeremony(context.Background(), ceremonyID)
	if err != nil {
		t.Fatal(err)
	}
	return c.SignatureID
}
