package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/store"
)

// countingStore is a real store that counts the lease reads it serves.
type countingStore struct {
	*store.SQL
	reads, jobsRead atomic.Int64
}

func (c *countingStore) LeasedJobs(ctx context.Context, leases []store.JobLease, now time.Time) ([]*store.ClaimedJob, []error, error) {
	c.reads.Add(1)
	c.jobsRead.Add(int64(len(leases)))
	return c.SQL.LeasedJobs(ctx, leases, now)
}

// TestQueueRemembersItsClaims: the results of jobs this queue claimed are
// checked against the claim, without reading the database, while the first
// lease lasts; a lease id it did not hand out, a lease past its first
// term, and a job whose result was already reported are read again, and
// the database's answer stands. On both databases.
func TestQueueRemembersItsClaims(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			testQueueRemembersItsClaims(t, dialect)
		})
	}
}

func testQueueRemembersItsClaims(t *testing.T, dialect db.Dialect) {
	ctx := context.Background()
	sq, err := store.Open(ctx, dbtest.Open(t, dialect))
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{SQL: sq}
	now := time.Now().Add(time.Second) // the jobs below are available by then
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	q := jobs.New(st, jobs.Config{Lease: 10 * time.Second, Now: func() time.Time { return time.Unix(0, clock.Load()) }})

	// An active HSM wallet with three signature requests.
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendHSM,
		KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating}
	if _, _, err := st.CreateWallet(ctx, w, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued}}); err != nil {
		t.Fatal(err)
	}
	pub := bytes.Repeat([]byte{2}, 33)
	keygen, err := q.Claim(ctx, "driver-a", 0, 1)
	if err != nil || len(keygen) != 1 {
		t.Fatalf("keygen claim: %v, %v", keygen, err)
	}
	if err := q.CompleteKeygen(ctx, keygen[0].ID, keygen[0].LeaseID, pub); err != nil {
		t.Fatal(err)
	}
	digests := map[string][]byte{}
	for i := range 3 {
		d := bytes.Repeat([]byte{byte(0x40 + i)}, 32)
		sg := &store.Signature{ID: ids.New(ids.Signature), RequestHash: d, WalletID: w.ID, Kind: store.KindHash, Hash: d, Digest: d, Status: store.SignaturePending}
		if _, _, err := st.CreateSignature(ctx, sg, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: w.ID, SignatureID: sg.ID, State: store.JobQueued}}); err != nil {
			t.Fatal(err)
		}
		digests[sg.ID] = d
	}
	claimed, err := q.Claim(ctx, "driver-a", 0, 3)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %d jobs, %v", len(claimed), err)
	}
	leases := make([]store.JobLease, len(claimed))
	for i, cj := range claimed {
		leases[i] = store.JobLease{JobID: cj.ID, LeaseID: cj.LeaseID}
	}

	// Within the lease: what the claim said, and no read.
	st.reads.Store(0)
	got, errs, err := q.LeasedMany(ctx, leases)
	if err != nil {
		t.Fatal(err)
	}
	for i, cj := range got {
		if errs[i] != nil || cj == nil || cj.ID != claimed[i].ID || cj.LeasedBy != "driver-a" ||
			!bytes.Equal(cj.Digest, digests[cj.SignatureID]) || !bytes.Equal(cj.PublicKey, pub) || cj.Signature != nil {
			t.Fatalf("job %d = %+v, %v; want the claimed job with its digest and key, not its request", i, cj, errs[i])
		}
	}
	if n := st.reads.Load(); n != 0 {
		t.Fatalf("checking results of jobs this queue claimed read the database %d times, want none", n)
	}

	// A lease id this queue never handed out is read, and refused.
	st.reads.Store(0)
	forged := []store.JobLease{{JobID: claimed[0].ID, LeaseID: ids.New(ids.Lease)}, leases[1]}
	got, errs, err = q.LeasedMany(ctx, forged)
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], store.ErrStateConflict) || got[0] != nil || errs[1] != nil || got[1] == nil {
		t.Fatalf("forged lease: %v, %v; want a conflict for it and the other job as claimed", got, errs)
	}
	if n, jobsRead := st.reads.Load(), st.jobsRead.Load(); n != 1 || jobsRead != 1 {
		t.Fatalf("read %d times (%d jobs), want once, for the forged lease only", n, jobsRead)
	}

	// A reported result's job is forgotten: a second report is checked
	// against the database, which says the job is done.
	sig := store.JobResult{JobID: claimed[1].ID, LeaseID: claimed[1].LeaseID, Driver: "driver-a", Kind: store.JobSign,
		R: bytes.Repeat([]byte{1}, 32), S: bytes.Repeat([]byte{1}, 32)}
	if errs, err := q.CompleteJobs(ctx, []store.JobResult{sig}); err != nil || errs[0] != nil {
		t.Fatalf("complete: %v, %v", errs, err)
	}
	st.reads.Store(0)
	_, errs, err = q.LeasedMany(ctx, leases[1:2])
	if err != nil || !errors.Is(errs[0], store.ErrStateConflict) || st.reads.Load() != 1 {
		t.Fatalf("a reported job: %v, %v after %d reads; want a conflict read from the database", errs, err, st.reads.Load())
	}

	// Past the first lease the database decides: the lease lapsed.
	clock.Store(now.Add(11 * time.Second).UnixNano())
	st.reads.Store(0)
	_, errs, err = q.LeasedMany(ctx, leases[2:])
	if err != nil || !errors.Is(errs[0], store.ErrStateConflict) || st.reads.Load() != 1 {
		t.Fatalf("a lapsed lease: %v, %v after %d reads; want a conflict read from the database", errs, err, st.reads.Load())
	}
}
