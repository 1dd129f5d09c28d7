package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// TestCompleteJobsRareCases: the results a batch must refuse one by one,
// mixed into one batch with good ones, on both databases (on PostgreSQL
// the good ones take the one-statement path and the rest the careful one):
// a lease that lapsed, a signature finished another way (its job fails, its
// result is discarded), two jobs of one signature (only the first records),
// and a keygen result.
func TestCompleteJobsRareCases(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			s := openStore(t, dialect)
			ctx := context.Background()
			now := time.Now().Add(time.Second)
			exec := func(query string, args ...any) {
				t.Helper()
				if _, err := s.DB().ExecContext(ctx, s.DB().Rebind(query), args...); err != nil {
					t.Fatal(err)
				}
			}
			claimAll := func(n int) []*store.ClaimedJob {
				t.Helper()
				got, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-a", LeaseIDs: newLeases(n), Now: now, LeaseFor: 10 * time.Second})
				if err != nil || len(got) != n {
					t.Fatalf("claimed %d, %v; want %d", len(got), err, n)
				}
				return got
			}
			sign := func(cj *store.ClaimedJob, b byte) store.JobResult {
				return store.JobResult{JobID: cj.ID, LeaseID: cj.LeaseID, Driver: "driver-a", Kind: store.JobSign,
					R: bytes.Repeat([]byte{b}, 32), S: bytes.Repeat([]byte{b + 1}, 32), RecoveryID: 1}
			}
			state := func(jobID string) store.JobState {
				t.Helper()
				j, err := s.GetJob(ctx, jobID)
				if err != nil {
					t.Fatal(err)
				}
				return j.State
			}

			newWallet := func() *store.Wallet {
				t.Helper()
				w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendHSM,
					KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating}
				if _, _, err := s.CreateWallet(ctx, w, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued}}); err != nil {
					t.Fatal(err)
				}
				return w
			}
			// An active wallet to sign with, and one whose keygen is
			// claimed but not yet reported.
			other := newWallet()
			k := claimAll(1)[0]
			if err := s.CompleteKeygenJob(ctx, k.ID, k.LeaseID, now, bytes.Repeat([]byte{2}, 33)); err != nil {
				t.Fatal(err)
			}
			w := newWallet()
			keygen := claimAll(1)[0]
			var sigs []*store.Signature
			for i := range 5 {
				d := bytes.Repeat([]byte{byte(0x30 + i)}, 32)
				sg := &store.Signature{ID: ids.New(ids.Signature), RequestHash: d, WalletID: other.ID, Kind: store.KindHash, Hash: d, Digest: d, Status: store.SignaturePending}
				if _, _, err := s.CreateSignature(ctx, sg, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: other.ID, SignatureID: sg.ID, State: store.JobQueued}}); err != nil {
					t.Fatal(err)
				}
				sigs = append(sigs, sg)
			}
			// A second job of signature 4, as only a fault could leave.
			twin := ids.New(ids.Job)
			exec(`INSERT INTO jobs (id, kind, wallet_id, signature_id, state, available_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, 0)`,
				twin, string(store.JobSign), other.ID, sigs[4].ID, string(store.JobQueued))
			jobs := claimAll(6)
			byTarget := map[string][]*store.ClaimedJob{}
			for _, cj := range jobs {
				byTarget[cj.SignatureID] = append(byTarget[cj.SignatureID], cj)
			}
			good, lapsed, finished := byTarget[sigs[0].ID][0], byTarget[sigs[1].ID][0], byTarget[sigs[2].ID][0]
			alsoGood, twins := byTarget[sigs[3].ID][0], byTarget[sigs[4].ID]
			if len(twins) != 2 {
				t.Fatalf("claimed %d jobs of the twin signature, want 2", len(twins))
			}
			exec(`UPDATE jobs SET lease_expires_at = ? WHERE id = ?`, now.Add(-time.Millisecond).UnixMicro(), lapsed.ID)
			exec(`UPDATE signatures SET status = ? WHERE id = ?`, string(store.SignatureFailed), finished.SignatureID)

			results := []store.JobResult{
				sign(good, 0x10), sign(lapsed, 0x20), sign(finished, 0x30), sign(twins[0], 0x40),
				{JobID: keygen.ID, LeaseID: keygen.LeaseID, Driver: "driver-a", Kind: store.JobKeygen, PublicKey: bytes.Repeat([]byte{3}, 33)},
				sign(twins[1], 0x50), sign(alsoGood, 0x60),
			}
			errs, err := s.CompleteJobs(ctx, now, results)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range []error{nil, store.ErrStateConflict, store.ErrStateConflict, nil, nil, store.ErrStateConflict, nil} {
				if want == nil && errs[k] != nil || want != nil && !errors.Is(errs[k], want) {
					t.Fatalf("outcome %d = %v, want %v", k, errs[k], want)
				}
			}
			for k, want := range map[int]string{0: sigs[0].ID, 2: sigs[2].ID, 3: sigs[4].ID, 4: w.ID, 6: sigs[3].ID} {
				if results[k].Target != want {
					t.Errorf("result %d names target %q, want %q", k, results[k].Target, want)
				}
			}
			for id, want := range map[string]store.JobState{good.ID: store.JobDone, lapsed.ID: store.JobLeased, finished.ID: store.JobFailed,
				twins[0].ID: store.JobDone, keygen.ID: store.JobDone, alsoGood.ID: store.JobDone} {
				if got := state(id); got != want {
					t.Errorf("job %s is %s, want %s", id, got, want)
				}
			}
			for i, want := range []store.SignatureStatus{store.SignatureSigned, store.SignaturePending, store.SignatureFailed, store.SignatureSigned, store.SignatureSigned} {
				sg, err := s.GetSignature(ctx, sigs[i].ID)
				if err != nil || sg.Status != want {
					t.Fatalf("signature %d = %+v, %v; want %s", i, sg, err, want)
				}
			}
			if sg, _ := s.GetSignature(ctx, sigs[4].ID); !bytes.Equal(sg.R, results[3].R) {
				t.Fatalf("the twin signature holds r %x, want the first twin's", sg.R)
			}
			if sg, _ := s.GetSignature(ctx, sigs[0].ID); !bytes.Equal(sg.R, results[0].R) || !bytes.Equal(sg.S, results[0].S) || sg.RecoveryID != 1 {
				t.Fatalf("signature 0 = %+v", sg)
			}
			if got, _ := s.GetWallet(ctx, w.ID); got.Status != store.WalletActive {
				t.Fatalf("wallet after its keygen result: %s", got.Status)
			}
		})
	}
}

func newLeases(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ids.New(ids.Lease)
	}
	return out
}
