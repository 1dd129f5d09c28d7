package node_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/store"
)

// TestDriverServiceRecoveryHint: the recovery id a driver sends only says
// which id the coordinator tries first. A wrong hint still records the right
// id; a signature by another key is refused whatever the hint; a hint that
// is not 0 or 1 is InvalidArgument.
func TestDriverServiceRecoveryHint(t *testing.T) {
	f := start(t, jobs.Config{Lease: 5 * time.Second, Retry: store.RetryPolicy{Backoff: time.Millisecond}})
	ctx := t.Context()
	c := f.client(t, "driver-x")
	w, key := f.activeWallet(t, c)
	complete := func(job *driverv1.Job, rs []byte, hint *uint32) error {
		_, err := c.CompleteJob(ctx, connect.NewRequest(&driverv1.CompleteJobRequest{
			JobId: job.GetId(), LeaseId: job.GetLeaseId(),
			Result: &driverv1.CompleteJobRequest_Sign{Sign: &driverv1.SignJobResult{Signature: rs, RecoveryId: hint}},
		}))
		return err
	}
	for i := range 8 { // both recovery ids turn up among eight signatures, almost surely
		sg := f.signature(t, w.ID, fmt.Sprintf("hint %d", i))
		job := claim(t, c, time.Second)
		compact := ecdsa.SignCompact(key, sg.Digest, true)
		v := uint32(compact[0] - 27 - 4)
		rs := compact[1:]

		wantCode(t, complete(job, rs, proto.Uint32(2)), connect.CodeInvalidArgument)
		other, _ := secp256k1.GeneratePrivateKey()
		otherSig := ecdsa.SignCompact(other, sg.Digest, true)
		for _, hint := range []uint32{0, 1} {
			wantCode(t, complete(job, otherSig[1:], proto.Uint32(hint)), connect.CodeInvalidArgument)
			job = claim(t, c, 3*time.Second) // the refusal was a failed attempt: the job is queued again
		}
		if err := complete(job, rs, proto.Uint32(1-v)); err != nil {
			t.Fatalf("signature %d with the wrong hint: %v", i, err)
		}
		got, _ := f.st.GetSignature(ctx, sg.ID)
		var stored ecsig.Signature
		copy(stored.R[:], got.R)
		copy(stored.S[:], got.S)
		stored.V = byte(got.RecoveryID)
		if got.Status != store.SignatureSigned || uint32(got.RecoveryID) != v || !ecsig.Verify(key.PubKey().SerializeCompressed(), sg.Digest, stored) {
			t.Fatalf("signature %d = %+v, want signed with recovery id %d", i, got, v)
		}
	}
}

// TestDriverServiceSendsUncompressed: the coordinator's node port answers
// uncompressed even to a client that accepts gzip, since what it sends
// (wrapped keys, digests, ciphertexts) does not compress, and refuses
// compressed requests as Unimplemented.
func TestDriverServiceSendsUncompressed(t *testing.T) {
	f := start(t, jobs.Config{Lease: 5 * time.Second})
	ctx := t.Context()
	hc := f.env.NodeClient(t, "driver-x")
	rec := &encodingRecorder{next: hc.Transport}
	hc.Transport = rec
	c := driverv1connect.NewDriverServiceClient(hc, f.env.NodeURL) // the node port itself, not jobstest's
	w, _ := f.activeWallet(t, c)
	if got, _ := f.st.GetWallet(ctx, w.ID); got.Status != store.WalletActive {
		t.Fatalf("wallet %s, want active", got.Status)
	}
	for i := range 32 {
		f.signature(t, w.ID, fmt.Sprintf("big answer %d", i))
	}
	resp, err := c.ClaimJob(ctx, connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(10 * time.Second), MaxJobs: 32}))
	if err != nil {
		t.Fatal(err)
	}
	if size := proto.Size(resp.Msg); size < 2048 {
		t.Fatalf("the answer is %d bytes: too small to be compressed anyway", size)
	}
	accepted, encoding := rec.last()
	if accepted == "" {
		t.Fatal("the client did not offer compression: the test proves nothing")
	}
	if encoding != "" {
		t.Fatalf("ClaimJob answered with Content-Encoding %q, want none", encoding)
	}
	// Nor does it take compressed requests.
	gz := driverv1connect.NewDriverServiceClient(f.env.NodeClient(t, "driver-x"), f.env.NodeURL, connect.WithSendGzip())
	_, err = gz.ClaimJob(ctx, connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(time.Millisecond), MaxJobs: 1}))
	wantCode(t, err, connect.CodeUnimplemented)
}

// encodingRecorder keeps the compression a client offered and the one the
// server answered with.
type encodingRecorder struct {
	next               http.RoundTripper
	mu                 sync.Mutex
	accepted, encoding string
}

func (r *encodingRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.accepted, r.encoding = req.Header.Get("Accept-Encoding"), resp.Header.Get("Content-Encoding")
		r.mu.Unlock()
	}
	return resp, err
}

func (r *encodingRecorder) last() (accepted, encoding string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, r.encoding
}
