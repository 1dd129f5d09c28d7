package node_test

import (
	"bytes"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"google.golang.org/protobuf/types/known/durationpb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/store"
)

// TestDriverServiceBatches: one ClaimJob leases several jobs, each under a
// lease of its own, and one CompleteJobs records the good results and
// answers each of the others with its own outcome: a signature that does not
// verify is rejected (and counted as a failed attempt), a result under a
// lease the driver never held is lease-lost, and neither spoils the batch.
func TestDriverServiceBatches(t *testing.T) {
	f := start(t, jobs.Config{Lease: 5 * time.Second, Retry: store.RetryPolicy{Backoff: time.Hour}})
	ctx := t.Context()
	c := f.client(t, "driver-x")
	w, key := f.activeWallet(t, c)
	var sigs []*store.Signature
	for _, msg := range []string{"a", "b", "c", "d"} {
		sigs = append(sigs, f.signature(t, w.ID, msg))
	}
	resp, err := c.ClaimJob(ctx, connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(time.Second), MaxJobs: 3}))
	if err != nil {
		t.Fatal(err)
	}
	claimed := append([]*driverv1.Job{resp.Msg.GetJob()}, resp.Msg.GetMoreJobs()...)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d jobs, want 3", len(claimed))
	}
	leases := map[string]bool{}
	for i, j := range claimed {
		if j.GetSignatureId() != sigs[i].ID || leases[j.GetLeaseId()] {
			t.Fatalf("job %d = %v: want signature %s under a lease of its own", i, j, sigs[i].ID)
		}
		leases[j.GetLeaseId()] = true
	}
	result := func(j *driverv1.Job, rs []byte) *driverv1.CompleteJobRequest {
		return &driverv1.CompleteJobRequest{JobId: j.GetId(), LeaseId: j.GetLeaseId(),
			Result: &driverv1.CompleteJobRequest_Sign{Sign: &driverv1.SignJobResult{Signature: rs}}}
	}
	other, _ := secp256k1.GeneratePrivateKey()
	stolen := result(claimed[2], rsHigh(key, claimed[2].GetDigest()))
	stolen.LeaseId = "lease_" + "00000000000000000000000000"
	out, err := c.CompleteJobs(ctx, connect.NewRequest(&driverv1.CompleteJobsRequest{Results: []*driverv1.CompleteJobRequest{
		result(claimed[0], rsHigh(key, claimed[0].GetDigest())),
		result(claimed[1], rsHigh(other, claimed[1].GetDigest())),
		stolen,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	want := []driverv1.JobOutcome{driverv1.JobOutcome_JOB_OUTCOME_RECORDED, driverv1.JobOutcome_JOB_OUTCOME_REJECTED, driverv1.JobOutcome_JOB_OUTCOME_LEASE_LOST}
	for i, o := range out.Msg.GetOutcomes() {
		if o.GetJobId() != claimed[i].GetId() || o.GetOutcome() != want[i] {
			t.Fatalf("outcome %d = %v, want %v", i, o, want[i])
		}
	}
	got, _ := f.st.GetSignature(ctx, sigs[0].ID)
	if got.Status != store.SignatureSigned || len(got.R) != 32 {
		t.Fatalf("first signature = %s", got.Status)
	}
	for _, i := range []int{1, 2} {
		if got, _ := f.st.GetSignature(ctx, sigs[i].ID); got.Status != store.SignaturePending {
			t.Fatalf("signature %d = %s after a refused result, want pending", i, got.Status)
		}
	}
	// The rejected attempt went back to the queue (behind its backoff);
	// the one under a stolen lease is still leased to this driver.
	if j, _ := f.st.GetJob(ctx, claimed[1].GetId()); j.State != store.JobQueued || !bytes.Contains([]byte(j.LastError), []byte("does not verify")) {
		t.Fatalf("rejected job = %s %q", j.State, j.LastError)
	}
	if j, _ := f.st.GetJob(ctx, claimed[2].GetId()); j.State != store.JobLeased {
		t.Fatalf("job under a stolen lease = %s", j.State)
	}
	// A job reported twice is done once.
	again, err := c.CompleteJobs(ctx, connect.NewRequest(&driverv1.CompleteJobsRequest{Results: []*driverv1.CompleteJobRequest{
		result(claimed[0], rsHigh(key, claimed[0].GetDigest())),
	}}))
	if err != nil || again.Msg.GetOutcomes()[0].GetOutcome() != driverv1.JobOutcome_JOB_OUTCOME_LEASE_LOST {
		t.Fatalf("second report = %v, %v", again, err)
	}
}
