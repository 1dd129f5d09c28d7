package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

func init() {
	jobTests = append(jobTests,
		struct {
			name string
			fn   func(t *testing.T, s store.Store)
		}{"JobClaimBatch", testJobClaimBatch},
		struct {
			name string
			fn   func(t *testing.T, s store.Store)
		}{"JobCompleteBatch", testJobCompleteBatch},
		struct {
			name string
			fn   func(t *testing.T, s store.Store)
		}{"JobConcurrentBatchClaims", testJobConcurrentBatchClaims},
		struct {
			name string
			fn   func(t *testing.T, s store.Store)
		}{"JobCompleteBatchRecordsEach", testJobCompleteBatchRecordsEach},
	)
}

func leaseIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ids.New(ids.Lease)
	}
	return out
}

// activeHSMWallet is an HSM wallet whose keygen job completed.
func activeHSMWallet(t *testing.T, s jobStore, now time.Time) *store.Wallet {
	t.Helper()
	w, kj := hsmWallet(t, s)
	k := claim(t, s, "driver-a", now)
	if k == nil || k.ID != kj.ID {
		t.Fatalf("claim keygen = %+v", k)
	}
	if err := s.CompleteKeygenJob(context.Background(), kj.ID, k.LeaseID, now, PubKey); err != nil {
		t.Fatal(err)
	}
	return w
}

// testJobClaimBatch: one claim leases several jobs oldest first, each under
// its own lease with its target's digest and key, skips jobs whose target
// is gone, and leases no more than it has lease ids for.
func testJobClaimBatch(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w := activeHSMWallet(t, s, now)
	var sigs []*store.Signature
	var jobs []*store.Job
	for i := range 5 {
		if i == 1 {
			// A wallet failed another way meanwhile: its job is closed, not leased.
			gone, kj := hsmWallet(t, s)
			if err := s.FailWallet(ctx, gone.ID, "given up"); err != nil {
				t.Fatal(err)
			}
			sigs, jobs = append(sigs, nil), append(jobs, kj)
			continue
		}
		sg, j := signJob(t, s, w.ID, byte(10+i))
		sigs, jobs = append(sigs, sg), append(jobs, j)
	}
	lids := leaseIDs(3)
	got, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-a", LeaseIDs: lids, Now: now, LeaseFor: lease})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("claimed %d jobs, want 3", len(got))
	}
	for i, want := range []int{0, 2, 3} {
		cj := got[i]
		if cj.ID != jobs[want].ID || cj.LeaseID != lids[i] || cj.LeasedBy != "driver-a" || cj.State != store.JobLeased ||
			!bytes.Equal(cj.Digest, sigs[want].Digest) || !bytes.Equal(cj.PublicKey, PubKey) {
			t.Fatalf("claimed job %d = %+v, want job %s under lease %s", i, cj, jobs[want].ID, lids[i])
		}
	}
	wantJobState(t, s, jobs[1].ID, store.JobFailed)
	rest, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-b", LeaseIDs: leaseIDs(8), Now: now, LeaseFor: lease})
	if err != nil || len(rest) != 1 || rest[0].ID != jobs[4].ID {
		t.Fatalf("second claim = %d jobs, %v; want the last one", len(rest), err)
	}
	if none, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-b", LeaseIDs: leaseIDs(8), Now: now, LeaseFor: lease}); err != nil || len(none) != 0 {
		t.Fatalf("claim of an empty queue = %d jobs, %v", len(none), err)
	}
}

// testJobCompleteBatch: a batch records every result under a current lease
// and reports the others one by one without spoiling the batch.
func testJobCompleteBatch(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w := activeHSMWallet(t, s, now)
	var sigs []*store.Signature
	for i := range 4 {
		sg, _ := signJob(t, s, w.ID, byte(20+i))
		sigs = append(sigs, sg)
	}
	got, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-a", LeaseIDs: leaseIDs(4), Now: now, LeaseFor: lease})
	if err != nil || len(got) != 4 {
		t.Fatalf("claim = %d, %v", len(got), err)
	}
	r, sv := bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0x55}, 32)
	results := make([]store.JobResult, len(got))
	for i, cj := range got {
		results[i] = store.JobResult{JobID: cj.ID, LeaseID: cj.LeaseID, Driver: "driver-a", Kind: store.JobSign, R: r, S: sv, RecoveryID: 1}
	}
	results[1].LeaseID = ids.New(ids.Lease) // a lease it never held
	results[2].Driver = "driver-b"          // not the holder
	results[3].JobID = ids.New(ids.Job)     // unknown
	errs, err := s.CompleteJobs(ctx, now, results)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], store.ErrStateConflict) || !errors.Is(errs[2], store.ErrStateConflict) || !errors.Is(errs[3], store.ErrNotFound) {
		t.Fatalf("outcomes = %v", errs)
	}
	if sg, _ := s.GetSignature(ctx, sigs[0].ID); sg.Status != store.SignatureSigned {
		t.Fatalf("first signature is %s, want signed", sg.Status)
	}
	for _, i := range []int{1, 2} {
		if sg, _ := s.GetSignature(ctx, sigs[i].ID); sg.Status != store.SignaturePending {
			t.Fatalf("signature %d is %s after a refused result, want pending", i, sg.Status)
		}
	}
	// Done twice is refused: the batch that recorded it cannot record it again.
	errs, err = s.CompleteJobs(ctx, now, results[:1])
	if err != nil || !errors.Is(errs[0], store.ErrStateConflict) {
		t.Fatalf("second completion = %v, %v", errs, err)
	}
}

// testJobConcurrentBatchClaims: claimers racing for batches never lease a
// job twice.
func testJobConcurrentBatchClaims(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w := activeHSMWallet(t, s, now)
	const n = 40
	for i := range n {
		signJob(t, s, w.ID, byte(i))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			driver := "driver-" + string(rune('a'+c))
			for {
				got, err := s.ClaimJobs(ctx, store.Claim{Driver: driver, LeaseIDs: leaseIDs(3), Now: now, LeaseFor: lease})
				if err != nil {
					t.Errorf("ClaimJobs: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, cj := range got {
					if prev, dup := seen[cj.ID]; dup {
						t.Errorf("job %s leased to %s and %s", cj.ID, prev, driver)
					}
					seen[cj.ID] = driver
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("leased %d distinct jobs, want %d", len(seen), n)
	}
}

// testJobCompleteBatchRecordsEach: a batch of accepted results, listed in
// another order than claimed and mixed with refused ones, records each
// signature's own r, s and recovery id, and closes each job.
func testJobCompleteBatchRecordsEach(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w := activeHSMWallet(t, s, now)
	const n = 6
	for i := range n {
		signJob(t, s, w.ID, byte(40+i))
	}
	got, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-a", LeaseIDs: leaseIDs(n), Now: now, LeaseFor: lease})
	if err != nil || len(got) != n {
		t.Fatalf("claim = %d, %v", len(got), err)
	}
	var results []store.JobResult
	for i := n - 1; i >= 0; i-- { // newest first
		cj := got[i]
		results = append(results, store.JobResult{JobID: cj.ID, LeaseID: cj.LeaseID, Driver: "driver-a", Kind: store.JobSign,
			R: bytes.Repeat([]byte{byte(0x10 + i)}, 32), S: bytes.Repeat([]byte{byte(0x20 + i)}, 32), RecoveryID: i % 2})
	}
	refused := store.JobResult{JobID: got[0].ID, LeaseID: ids.New(ids.Lease), Driver: "driver-a", Kind: store.JobSign,
		R: bytes.Repeat([]byte{0xee}, 32), S: bytes.Repeat([]byte{0xee}, 32)}
	results = append(results[:2], append([]store.JobResult{refused}, results[2:]...)...)
	errs, err := s.CompleteJobs(ctx, now, results)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range results {
		if (k == 2) != (errs[k] != nil) {
			t.Fatalf("outcome %d = %v", k, errs[k])
		}
		if k != 2 && r.Target != got[slices.IndexFunc(got, func(cj *store.ClaimedJob) bool { return cj.ID == r.JobID })].SignatureID {
			t.Fatalf("result %d names target %q", k, r.Target)
		}
	}
	// A job reported twice in one batch keeps its first result.
	extra := signJobs(t, s, w.ID, 1, 60)
	dup, err := s.ClaimJobs(ctx, store.Claim{Driver: "driver-a", LeaseIDs: leaseIDs(1), Now: now, LeaseFor: lease})
	if err != nil || len(dup) != 1 || dup[0].SignatureID != extra[0].ID {
		t.Fatalf("claim = %v, %v", dup, err)
	}
	first := store.JobResult{JobID: dup[0].ID, LeaseID: dup[0].LeaseID, Driver: "driver-a", Kind: store.JobSign,
		R: bytes.Repeat([]byte{0x61}, 32), S: bytes.Repeat([]byte{0x62}, 32)}
	second := first
	second.R = bytes.Repeat([]byte{0x71}, 32)
	errs, err = s.CompleteJobs(ctx, now, []store.JobResult{first, second})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], store.ErrStateConflict) {
		t.Fatalf("a job reported twice: %v, %v", errs, err)
	}
	if sg, _ := s.GetSignature(ctx, extra[0].ID); sg.Status != store.SignatureSigned || !bytes.Equal(sg.R, first.R) {
		t.Fatalf("signature after a job reported twice = %+v", sg)
	}
	wantJobState(t, s, dup[0].ID, store.JobDone)
	for i, cj := range got {
		sg, err := s.GetSignature(ctx, cj.SignatureID)
		if err != nil || sg.Status != store.SignatureSigned || !bytes.Equal(sg.R, bytes.Repeat([]byte{byte(0x10 + i)}, 32)) ||
			!bytes.Equal(sg.S, bytes.Repeat([]byte{byte(0x20 + i)}, 32)) || sg.RecoveryID != i%2 {
			t.Fatalf("signature %d = %+v, %v", i, sg, err)
		}
		wantJobState(t, s, cj.ID, store.JobDone)
	}
}

// signJobs queues n sign jobs for the wallet, with digests from b on.
func signJobs(t *testing.T, s store.Store, walletID string, n int, b byte) []*store.Signature {
	t.Helper()
	out := make([]*store.Signature, n)
	for i := range n {
		out[i], _ = signJob(t, s, walletID, b+byte(i))
	}
	return out
}
