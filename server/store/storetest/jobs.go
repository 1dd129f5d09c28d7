package storetest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// jobTests is the HSM job queue's part of the suite; Run appends it.
var jobTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"JobClaimOrder", testJobClaimOrder},
	{"JobLeaseLapse", testJobLeaseLapse},
	{"JobRenewLease", testJobRenewLease},
	{"JobRenewByHolderOnly", testJobRenewByHolderOnly},
	{"JobLeaseMaxLife", testJobLeaseMaxLife},
	{"JobCompleteSign", testJobCompleteSign},
	{"JobRetryBackoff", testJobRetryBackoff},
	{"JobPermanentFailure", testJobPermanentFailure},
	{"JobLapsedTooOften", testJobLapsedTooOften},
	{"JobConcurrentClaims", testJobConcurrentClaims},
	{"JobRelease", testJobRelease},
}

// testJobRelease: a claim that never reached its driver goes straight back
// to the queue, uncounted; a release under a stale lease changes nothing.
func testJobRelease(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	_, j := hsmWallet(t, s)
	a := claim(t, s, "driver-a", now)
	if err := s.ReleaseJob(ctx, j.ID, ids.New(ids.Lease)); err != nil {
		t.Fatal(err)
	}
	wantJobState(t, s, j.ID, store.JobLeased)
	if err := s.ReleaseJob(ctx, j.ID, a.LeaseID); err != nil {
		t.Fatal(err)
	}
	if got := wantJobState(t, s, j.ID, store.JobQueued); got.Attempts != 0 {
		t.Fatalf("released job counts %d attempts, want 0", got.Attempts)
	}
	b := claim(t, s, "driver-b", now)
	if b == nil || b.ID != j.ID || b.Released {
		t.Fatalf("after release, claim = %+v; want the same job at once, not as a lapsed lease", b)
	}
}

// jobStore is what the queue tests need: the queue and a way to read a job.
type jobStore interface {
	store.Store
	store.JobQueue
	GetJob(ctx context.Context, id string) (*store.Job, error)
}

func asJobStore(t *testing.T, s store.Store) jobStore {
	t.Helper()
	js, ok := s.(jobStore)
	if !ok {
		t.Fatalf("%T does not implement the job queue", s)
	}
	return js
}

// The lease length and maximum lease life of the suite.
const (
	lease   = 10 * time.Second
	maxLife = 35 * time.Second
)

// hsmWallet creates a creating HSM wallet with its queued keygen job.
func hsmWallet(t *testing.T, s store.Store) (*store.Wallet, *store.Job) {
	t.Helper()
	w := &store.Wallet{
		ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendHSM,
		KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating,
	}
	j := &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued}
	if _, _, err := s.CreateWallet(context.Background(), w, store.Work{Job: j}); err != nil {
		t.Fatalf("CreateWallet: %v", err)
	}
	return w, j
}

// signJob creates a pending signature with its queued sign job on an active
// HSM wallet.
func signJob(t *testing.T, s store.Store, walletID string, b byte) (*store.Signature, *store.Job) {
	t.Helper()
	sg, work := newSignature(walletID, "", b)
	if _, _, err := s.CreateSignature(context.Background(), sg, work); err != nil {
		t.Fatalf("CreateSignature: %v", err)
	}
	return sg, work.Job
}

func claim(t *testing.T, s jobStore, driver string, now time.Time) *store.ClaimedJob {
	t.Helper()
	cj, err := s.ClaimJob(context.Background(), store.Claim{Driver: driver, LeaseID: ids.New(ids.Lease), Now: now, LeaseFor: lease})
	if err != nil {
		t.Fatalf("ClaimJob: %v", err)
	}
	return cj
}

// renewal renews a lease for lease, under a maximum life of maxLife.
func renewal(jobID, leaseID, driver string, now time.Time) store.Renewal {
	return store.Renewal{JobID: jobID, LeaseID: leaseID, Driver: driver, Now: now, LeaseFor: lease, MaxLife: maxLife}
}

func wantJobState(t *testing.T, s jobStore, id string, want store.JobState) *store.Job {
	t.Helper()
	j, err := s.GetJob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != want {
		t.Fatalf("job %s is %s, want %s (last error %q)", id, j.State, want, j.LastError)
	}
	return j
}

func testJobClaimOrder(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	var want []string
	for range 3 {
		_, j := hsmWallet(t, s)
		want = append(want, j.ID)
	}
	// A job that is not available yet is skipped.
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendHSM, KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating}
	later := &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued, AvailableAt: now.Add(lease / 2)}
	if _, _, err := s.CreateWallet(ctx, w, store.Work{Job: later}); err != nil {
		t.Fatal(err)
	}
	for i, id := range want {
		cj := claim(t, s, "driver-a", now)
		if cj == nil || cj.ID != id {
			t.Fatalf("claim %d = %+v, want job %s", i, cj, id)
		}
		if cj.Kind != store.JobKeygen || cj.Attempts != 1 || cj.LeasedBy != "driver-a" || cj.Released ||
			!cj.LeaseExpiresAt.Equal(now.Add(lease).Truncate(time.Microsecond)) || cj.Digest != nil {
			t.Fatalf("claimed job = %+v", cj)
		}
	}
	if cj := claim(t, s, "driver-a", now); cj != nil {
		t.Fatalf("claimed %s, which is not available yet", cj.ID)
	}
	if cj := claim(t, s, "driver-a", now.Add(lease/2)); cj == nil || cj.ID != later.ID {
		t.Fatalf("after available_at: claimed %+v, want %s", cj, later.ID)
	}
	counts, err := s.JobCounts(ctx, now)
	if err != nil || counts.Queued != 0 || counts.Leased != 4 || counts.Lapsed != 0 {
		t.Fatalf("JobCounts = %+v, %v", counts, err)
	}
	counts, _ = s.JobCounts(ctx, now.Add(lease))
	if counts.Lapsed != 3 {
		t.Fatalf("JobCounts when the first leases lapse = %+v, want 3 lapsed", counts)
	}
}

func testJobLeaseLapse(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w, j := hsmWallet(t, s)
	a := claim(t, s, "driver-a", now)
	if a == nil || a.ID != j.ID {
		t.Fatalf("claim = %+v", a)
	}
	if b := claim(t, s, "driver-b", now.Add(lease/2)); b != nil {
		t.Fatalf("driver-b claimed %s under a live lease", b.ID)
	}
	b := claim(t, s, "driver-b", now.Add(lease))
	if b == nil || b.ID != j.ID || !b.Released || b.Attempts != 2 || b.LeaseID == a.LeaseID {
		t.Fatalf("re-claim after the lease lapsed = %+v", b)
	}
	// Driver A wakes up: every report under its old lease is refused.
	later := now.Add(lease + time.Second)
	if err := s.CompleteKeygenJob(ctx, j.ID, a.LeaseID, later, PubKey); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("complete under a taken-over lease: %v, want ErrStateConflict", err)
	}
	if _, err := s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-a", later)); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("renew a taken-over lease: %v", err)
	}
	if _, err := s.FailJob(ctx, store.JobFailure{JobID: j.ID, LeaseID: a.LeaseID, Now: later, Reason: "x", Retryable: true}); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("fail under a taken-over lease: %v", err)
	}
	got, _ := s.GetWallet(ctx, w.ID)
	if got.Status != store.WalletCreating {
		t.Fatalf("stale reports changed the wallet: %+v", got)
	}
	if err := s.CompleteKeygenJob(ctx, j.ID, b.LeaseID, later, PubKey); err != nil {
		t.Fatalf("complete under the current lease: %v", err)
	}
	got, _ = s.GetWallet(ctx, w.ID)
	if got.Status != store.WalletActive || !bytes.Equal(got.PublicKey, PubKey) {
		t.Fatalf("wallet after keygen job = %+v", got)
	}
	done := wantJobState(t, s, j.ID, store.JobDone)
	if done.LeasedBy != "driver-b" {
		t.Fatalf("done job leased by %q, want driver-b", done.LeasedBy)
	}
	if err := s.CompleteKeygenJob(ctx, j.ID, b.LeaseID, later, PubKey); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("second completion: %v, want ErrStateConflict", err)
	}
	if err := s.CompleteKeygenJob(ctx, ids.New(ids.Job), b.LeaseID, later, PubKey); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown job: %v, want ErrNotFound", err)
	}
}

func testJobRenewLease(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	_, j := hsmWallet(t, s)
	a := claim(t, s, "driver-a", now)
	exp, err := s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-a", now.Add(8*time.Second)))
	if err != nil || !exp.Equal(now.Add(18*time.Second).Truncate(time.Microsecond)) {
		t.Fatalf("RenewLease = %v, %v", exp, err)
	}
	if b := claim(t, s, "driver-b", now.Add(12*time.Second)); b != nil {
		t.Fatalf("claimed %s under a renewed lease", b.ID)
	}
	if _, err := s.RenewLease(ctx, renewal(j.ID, ids.New(ids.Lease), "driver-a", now.Add(12*time.Second))); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("renew with a wrong lease id: %v", err)
	}
	if _, err := s.RenewLease(ctx, renewal(ids.New(ids.Job), a.LeaseID, "driver-a", now)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew an unknown job: %v", err)
	}
	// Once lapsed, the lease cannot be renewed, even before anyone took it.
	if _, err := s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-a", now.Add(18*time.Second))); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("renew a lapsed lease: %v", err)
	}
	if err := s.CompleteKeygenJob(ctx, j.ID, a.LeaseID, now.Add(19*time.Second), PubKey); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("complete under a lapsed lease: %v", err)
	}
	if _, err := s.LeasedJob(ctx, j.ID, a.LeaseID, now.Add(19*time.Second)); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("LeasedJob under a lapsed lease: %v", err)
	}
}

func testJobCompleteSign(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w, kj := hsmWallet(t, s)
	k := claim(t, s, "driver-a", now)
	if err := s.CompleteKeygenJob(ctx, kj.ID, k.LeaseID, now, PubKey); err != nil {
		t.Fatal(err)
	}
	sg, j := signJob(t, s, w.ID, 7)
	cj := claim(t, s, "driver-a", now)
	if cj == nil || cj.ID != j.ID || cj.Kind != store.JobSign || cj.SignatureID != sg.ID ||
		!bytes.Equal(cj.Digest, sg.Digest) || !bytes.Equal(cj.PublicKey, PubKey) {
		t.Fatalf("claimed sign job = %+v", cj)
	}
	leased, err := s.LeasedJob(ctx, j.ID, cj.LeaseID, now)
	if err != nil || !bytes.Equal(leased.Digest, sg.Digest) || !bytes.Equal(leased.PublicKey, PubKey) {
		t.Fatalf("LeasedJob = %+v, %v", leased, err)
	}
	// Several at once, each answered on its own: the current lease, the
	// same job under a wrong lease id, the finished keygen job, an unknown
	// job, and the current lease again.
	many, errs, err := s.LeasedJobs(ctx, []store.JobLease{
		{JobID: j.ID, LeaseID: cj.LeaseID}, {JobID: j.ID, LeaseID: ids.New(ids.Lease)}, {JobID: kj.ID, LeaseID: k.LeaseID},
		{JobID: ids.New(ids.Job), LeaseID: cj.LeaseID}, {JobID: j.ID, LeaseID: cj.LeaseID},
	}, now)
	if err != nil || len(many) != 5 || len(errs) != 5 {
		t.Fatalf("LeasedJobs = %v, %v, %v", many, errs, err)
	}
	for _, i := range []int{0, 4} {
		if errs[i] != nil || many[i] == nil || many[i].ID != j.ID || !bytes.Equal(many[i].Digest, sg.Digest) {
			t.Fatalf("LeasedJobs[%d] = %+v, %v", i, many[i], errs[i])
		}
	}
	for i, want := range map[int]error{1: store.ErrStateConflict, 2: store.ErrStateConflict, 3: store.ErrNotFound} {
		if !errors.Is(errs[i], want) || many[i] != nil {
			t.Fatalf("LeasedJobs[%d] = %+v, %v, want %v", i, many[i], errs[i], want)
		}
	}
	r, sv := bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0x55}, 32)
	if err := s.CompleteKeygenJob(ctx, j.ID, cj.LeaseID, now, PubKey); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("keygen result for a sign job: %v, want ErrStateConflict", err)
	}
	if err := s.CompleteSignJob(ctx, j.ID, cj.LeaseID, now, r, sv, 1); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetSignature(ctx, sg.ID)
	if got.Status != store.SignatureSigned || !bytes.Equal(got.R, r) || !bytes.Equal(got.S, sv) || got.RecoveryID != 1 {
		t.Fatalf("signature after sign job = %+v", got)
	}
	wantJobState(t, s, j.ID, store.JobDone)
	if err := s.CompleteSignJob(ctx, j.ID, cj.LeaseID, now, r, sv, 1); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("second completion: %v", err)
	}
}

func testJobRetryBackoff(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w, kj := hsmWallet(t, s)
	k := claim(t, s, "driver-a", now)
	if err := s.CompleteKeygenJob(ctx, kj.ID, k.LeaseID, now, PubKey); err != nil {
		t.Fatal(err)
	}
	sg, j := signJob(t, s, w.ID, 3)
	policy := store.RetryPolicy{MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Minute}
	for attempt, backoff := range []time.Duration{time.Second, 2 * time.Second} {
		cj := claim(t, s, "driver-a", now)
		if cj == nil || cj.ID != j.ID || cj.Attempts != attempt+1 {
			t.Fatalf("attempt %d: claim = %+v", attempt+1, cj)
		}
		state, err := s.FailJob(ctx, store.JobFailure{JobID: j.ID, LeaseID: cj.LeaseID, Now: now, Reason: "CKR_DEVICE_ERROR", Retryable: true, Retry: policy})
		if err != nil || state != store.JobQueued {
			t.Fatalf("attempt %d: FailJob = %s, %v; want queued", attempt+1, state, err)
		}
		if early := claim(t, s, "driver-a", now.Add(backoff-time.Millisecond)); early != nil {
			t.Fatalf("attempt %d: claimed before the %v backoff ended", attempt+1, backoff)
		}
		now = now.Add(backoff)
	}
	got, _ := s.GetSignature(ctx, sg.ID)
	if got.Status != store.SignaturePending {
		t.Fatalf("signature failed while attempts remained: %+v", got)
	}
	cj := claim(t, s, "driver-a", now)
	if cj == nil || cj.Attempts != 3 {
		t.Fatalf("third attempt: %+v", cj)
	}
	state, err := s.FailJob(ctx, store.JobFailure{JobID: j.ID, LeaseID: cj.LeaseID, Now: now, Reason: "CKR_DEVICE_ERROR", Retryable: true, Retry: policy})
	if err != nil || state != store.JobFailed {
		t.Fatalf("last attempt: FailJob = %s, %v; want failed", state, err)
	}
	got, _ = s.GetSignature(ctx, sg.ID)
	if got.Status != store.SignatureFailed || !strings.Contains(got.FailureReason, "CKR_DEVICE_ERROR") {
		t.Fatalf("signature after the last attempt = %+v", got)
	}
	wantJobState(t, s, j.ID, store.JobFailed)
	if cj := claim(t, s, "driver-a", now.Add(time.Hour)); cj != nil {
		t.Fatalf("failed job claimed again: %+v", cj)
	}
	if d := policy.Delay(10); d != time.Minute {
		t.Fatalf("Delay(10) = %v, want the 1 min cap", d)
	}
}

func testJobPermanentFailure(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w, j := hsmWallet(t, s)
	cj := claim(t, s, "driver-a", now)
	state, err := s.FailJob(ctx, store.JobFailure{JobID: j.ID, LeaseID: cj.LeaseID, Now: now, Reason: "hsm: master key not found"})
	if err != nil || state != store.JobFailed {
		t.Fatalf("FailJob = %s, %v", state, err)
	}
	got, _ := s.GetWallet(ctx, w.ID)
	if got.Status != store.WalletFailed || got.FailureReason != "hsm: master key not found" {
		t.Fatalf("wallet after a permanent failure = %+v", got)
	}
}

func testJobLapsedTooOften(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	w, j := hsmWallet(t, s)
	c := store.Claim{Driver: "driver-a", Now: now, LeaseFor: lease, MaxAttempts: 2}
	for i := range 2 {
		c.LeaseID, c.Now = ids.New(ids.Lease), now.Add(time.Duration(i)*lease)
		if cj, err := s.ClaimJob(ctx, c); err != nil || cj == nil || cj.ID != j.ID {
			t.Fatalf("claim %d: %+v, %v", i+1, cj, err)
		}
	}
	c.LeaseID, c.Now = ids.New(ids.Lease), now.Add(2*lease)
	if cj, err := s.ClaimJob(ctx, c); err != nil || cj != nil {
		t.Fatalf("third claim of a job whose lease lapsed twice: %+v, %v; want none", cj, err)
	}
	wantJobState(t, s, j.ID, store.JobFailed)
	got, _ := s.GetWallet(ctx, w.ID)
	if got.Status != store.WalletFailed || !strings.Contains(got.FailureReason, "lapsed") {
		t.Fatalf("wallet = %+v", got)
	}
}

// testJobConcurrentClaims has many drivers claim at once: each job must be
// leased exactly once (SKIP LOCKED on PostgreSQL, the write lock on SQLite).
func testJobConcurrentClaims(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	const jobs, claimers = 200, 8
	for range jobs {
		hsmWallet(t, s)
	}
	now := time.Now().Add(time.Second)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Go(func() {
			for {
				cj, err := s.ClaimJob(ctx, store.Claim{Driver: "driver-" + string(rune('a'+i)), LeaseID: ids.New(ids.Lease), Now: now, LeaseFor: lease})
				if err != nil {
					t.Errorf("ClaimJob: %v", err)
					return
				}
				if cj == nil {
					return
				}
				mu.Lock()
				seen[cj.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("%d distinct jobs claimed, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("job %s claimed %d times", id, n)
		}
	}
}

// A lease is bound to the driver that claimed it: another driver holding
// the lease id (leaked from a log, or guessed) cannot renew it.
func testJobRenewByHolderOnly(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	_, j := hsmWallet(t, s)
	a := claim(t, s, "driver-1", now)
	if _, err := s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-2", now.Add(lease/2))); !errors.Is(err, store.ErrNotLeaseHolder) {
		t.Fatalf("driver-2 renewing driver-1's lease: %v, want ErrNotLeaseHolder", err)
	}
	if got := wantJobState(t, s, j.ID, store.JobLeased); !got.LeaseExpiresAt.Equal(a.LeaseExpiresAt) {
		t.Fatalf("a refused renewal moved the lease to %s", got.LeaseExpiresAt)
	}
	if _, err := s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-1", now.Add(lease/2))); err != nil {
		t.Fatalf("driver-1 renewing its own lease: %v", err)
	}
}

// A driver that keeps renewing holds the job no longer than the maximum
// lease life: the renewal that reaches the cap is clipped to it, the next
// is refused, and at the cap the job is claimable by another driver.
func testJobLeaseMaxLife(t *testing.T, st store.Store) {
	s := asJobStore(t, st)
	ctx := context.Background()
	now := time.Now().Add(time.Second)
	_, j := hsmWallet(t, s)
	a := claim(t, s, "driver-a", now)
	capAt := now.Add(maxLife).Truncate(time.Microsecond)
	at := now
	var exp time.Time
	for !exp.Equal(capAt) {
		at = at.Add(lease / 2)
		if at.After(capAt) {
			t.Fatalf("renewed past the cap: lease now ends %s, cap %s", exp, capAt)
		}
		var err error
		if exp, err = s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-a", at)); err != nil {
			t.Fatalf("renewal at +%s: %v", at.Sub(now), err)
		}
		if exp.After(capAt) {
			t.Fatalf("renewal at +%s gave %s, beyond the cap %s", at.Sub(now), exp, capAt)
		}
	}
	if _, err := s.RenewLease(ctx, renewal(j.ID, a.LeaseID, "driver-a", at.Add(time.Millisecond))); !errors.Is(err, store.ErrStateConflict) ||
		!strings.Contains(err.Error(), "maximum life") {
		t.Fatalf("renewal at the cap: %v, want ErrStateConflict naming the maximum life", err)
	}
	if b := claim(t, s, "driver-b", capAt.Add(-time.Millisecond)); b != nil {
		t.Fatalf("driver-b claimed %s before the cap", b.ID)
	}
	b := claim(t, s, "driver-b", capAt)
	if b == nil || b.ID != j.ID || !b.Released || b.Attempts != 2 {
		t.Fatalf("claim at the cap = %+v, want the job re-leased", b)
	}
	if !b.LeasedAt.Equal(capAt) {
		t.Fatalf("the new lease was granted at %s, want %s", b.LeasedAt, capAt)
	}
}
