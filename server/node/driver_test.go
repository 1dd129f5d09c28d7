package node_test

import (
	"bytes"
	"context"
	stdecdsa "crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/jobs/jobstest"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
)

type fixture struct {
	env  *servertest.Env
	node *jobstest.Node
	st   *store.SQL
}

func start(t *testing.T, cfg jobs.Config) *fixture {
	t.Helper()
	env := servertest.Start(t, servertest.Options{
		Drivers:   []string{"driver-y"},
		Configure: func(c *server.Config) { c.HSM = true },
	})
	return &fixture{env: env, node: jobstest.Start(t, env, cfg), st: env.Server.Store()}
}

// client returns a DriverService client with the named node's certificate.
func (f *fixture) client(t *testing.T, name string, opts ...connect.ClientOption) driverv1connect.DriverServiceClient {
	return driverv1connect.NewDriverServiceClient(f.env.NodeClient(t, name), f.node.URL, opts...)
}

// hsmWallet queues a keygen job as the wallet API does, and wakes the queue.
func (f *fixture) hsmWallet(t *testing.T) *store.Wallet {
	t.Helper()
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendHSM, KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating}
	if _, _, err := f.st.CreateWallet(t.Context(), w, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued}}); err != nil {
		t.Fatal(err)
	}
	f.node.Queue.NotifyWork()
	return w
}

// activeWallet makes an HSM wallet active through c: it queues the keygen
// job, claims it and reports a fresh key, which it returns.
func (f *fixture) activeWallet(t *testing.T, c driverv1connect.DriverServiceClient) (*store.Wallet, *secp256k1.PrivateKey) {
	t.Helper()
	w := f.hsmWallet(t)
	key, _ := secp256k1.GeneratePrivateKey()
	if err := f.completeKeygen(t, c, t.Context(), claim(t, c, 10*time.Second), key.PubKey().SerializeCompressed()); err != nil {
		t.Fatal(err)
	}
	return w, key
}

func (f *fixture) signature(t *testing.T, walletID string, msg string) *store.Signature {
	t.Helper()
	d := sha256.Sum256([]byte(msg))
	sg := &store.Signature{ID: ids.New(ids.Signature), RequestHash: d[:], WalletID: walletID, Kind: store.KindHash, Hash: d[:], Digest: d[:], Status: store.SignaturePending}
	if _, _, err := f.st.CreateSignature(t.Context(), sg, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: walletID, SignatureID: sg.ID, State: store.JobQueued}}); err != nil {
		t.Fatal(err)
	}
	f.node.Queue.NotifyWork()
	return sg
}

func claim(t *testing.T, c driverv1connect.DriverServiceClient, wait time.Duration) *driverv1.Job {
	t.Helper()
	resp, err := c.ClaimJob(t.Context(), connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(wait)}))
	if err != nil {
		t.Fatalf("ClaimJob: %v", err)
	}
	return resp.Msg.GetJob()
}

// completeKeygen reports pub, attested by the coordinator's pinned
// (software) attestation key as a driver's HSM would.
func (f *fixture) completeKeygen(t *testing.T, c driverv1connect.DriverServiceClient, ctx context.Context, job *driverv1.Job, pub []byte) error {
	keyID, sig := f.env.Attest(t, job.GetWalletId(), pub)
	return completeKeygenAttested(c, ctx, job, pub, &driverv1.KeyAttestation{KeyId: keyID, Signature: sig})
}

func completeKeygenAttested(c driverv1connect.DriverServiceClient, ctx context.Context, job *driverv1.Job, pub []byte, a *driverv1.KeyAttestation) error {
	_, err := c.CompleteJob(ctx, connect.NewRequest(&driverv1.CompleteJobRequest{
		JobId: job.GetId(), LeaseId: job.GetLeaseId(),
		Result: &driverv1.CompleteJobRequest_Keygen{Keygen: &driverv1.KeygenJobResult{PublicKey: pub, Attestation: a}},
	}))
	return err
}

func completeSign(c driverv1connect.DriverServiceClient, ctx context.Context, job *driverv1.Job, rs []byte) error {
	_, err := c.CompleteJob(ctx, connect.NewRequest(&driverv1.CompleteJobRequest{
		JobId: job.GetId(), LeaseId: job.GetLeaseId(),
		Result: &driverv1.CompleteJobRequest_Sign{Sign: &driverv1.SignJobResult{Signature: rs}},
	}))
	return err
}

// rsHigh signs digest with key and returns r || s with S in the HIGH half,
// as some HSMs return it: the coordinator must normalise it.
func rsHigh(key *secp256k1.PrivateKey, digest []byte) []byte {
	sig := ecdsa.Sign(key, digest)
	r, s := sig.R(), sig.S()
	s.Negate()
	rb, sb := r.Bytes(), s.Bytes()
	return append(rb[:], sb[:]...)
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error = %v, want %v", err, code)
	}
}

// TestDriverServiceLifecycle runs a keygen and a sign job through the
// handler as a driver would, over real mTLS, in the Connect and gRPC
// protocols, with a software key standing in for the HSM.
func TestDriverServiceLifecycle(t *testing.T) {
	for _, proto := range []struct {
		name string
		opts []connect.ClientOption
	}{{"connect", nil}, {"grpc", []connect.ClientOption{connect.WithGRPC()}}} {
		t.Run(proto.name, func(t *testing.T) {
			f := start(t, jobs.Config{Lease: 5 * time.Second, Retry: store.RetryPolicy{Backoff: 200 * time.Millisecond}})
			ctx := t.Context()
			c := f.client(t, "driver-x", proto.opts...)
			w := f.hsmWallet(t)

			job := claim(t, c, time.Second)
			if job == nil || job.GetKind() != driverv1.JobKind_JOB_KIND_KEYGEN || job.GetWalletId() != w.ID || job.GetAttempt() != 0 {
				t.Fatalf("claimed %v", job)
			}
			key, _ := secp256k1.GeneratePrivateKey()
			pub := key.PubKey().SerializeCompressed()

			// A public key that is not a point is refused and counted as a
			// failed attempt; the job goes back to the queue.
			bad := bytes.Clone(pub)
			bad[0] = 0x05
			wantCode(t, f.completeKeygen(t, c, ctx, job, bad), connect.CodeInvalidArgument)
			if got, _ := f.st.GetWallet(ctx, w.ID); got.Status != store.WalletCreating {
				t.Fatalf("wallet after a bad key: %s", got.Status)
			}
			j, _ := f.st.GetJob(ctx, job.GetId())
			if j.State != store.JobQueued || j.LastError == "" {
				t.Fatalf("job after a bad key = %+v", j)
			}
			// The failed attempt was a retry, after a backoff.
			job = claim(t, c, 3*time.Second)
			if job == nil || job.GetAttempt() != 1 {
				t.Fatalf("re-claim after backoff: %v", job)
			}
			if err := f.completeKeygen(t, c, ctx, job, pub); err != nil {
				t.Fatal(err)
			}
			if got, _ := f.st.GetWallet(ctx, w.ID); got.Status != store.WalletActive || !bytes.Equal(got.PublicKey, pub) {
				t.Fatalf("wallet = %+v", got)
			}

			sg := f.signature(t, w.ID, "hello")
			job = claim(t, c, time.Second)
			if job == nil || job.GetKind() != driverv1.JobKind_JOB_KIND_SIGN || !bytes.Equal(job.GetDigest(), sg.Digest) || !bytes.Equal(job.GetPublicKey(), pub) {
				t.Fatalf("sign job = %v", job)
			}
			// Another driver may not report on this lease.
			wantCode(t, completeSign(f.client(t, "driver-y", proto.opts...), ctx, job, rsHigh(key, sg.Digest)), connect.CodePermissionDenied)
			// A signature by another key never becomes "signed".
			other, _ := secp256k1.GeneratePrivateKey()
			wantCode(t, completeSign(c, ctx, job, rsHigh(other, sg.Digest)), connect.CodeInvalidArgument)
			if got, _ := f.st.GetSignature(ctx, sg.ID); got.Status != store.SignaturePending {
				t.Fatalf("signature after a bad result: %s", got.Status)
			}
			job = claim(t, c, 3*time.Second)
			if err := completeSign(c, ctx, job, rsHigh(key, sg.Digest)); err != nil {
				t.Fatal(err)
			}
			got, _ := f.st.GetSignature(ctx, sg.ID)
			var stored ecsig.Signature
			copy(stored.R[:], got.R)
			copy(stored.S[:], got.S)
			stored.V = byte(got.RecoveryID)
			if got.Status != store.SignatureSigned || !ecsig.Verify(pub, sg.Digest, stored) {
				t.Fatalf("signature = %+v: not a valid low-S signature with the right recovery id", got)
			}
			// Reports under a finished lease are refused.
			wantCode(t, completeSign(c, ctx, job, rsHigh(key, sg.Digest)), connect.CodeFailedPrecondition)

			reg := f.node.Registry
			for _, m := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"sigil_hsm_jobs_claimed_total", map[string]string{"driver": "driver-x"}, 4},
				{"sigil_hsm_jobs_completed_total", map[string]string{"driver": "driver-x"}, 2},
				{"sigil_hsm_jobs_failed_total", map[string]string{"driver": "driver-x", "outcome": "retry"}, 2},
				{"sigil_hsm_queue_jobs", map[string]string{"state": "queued"}, 0},
			} {
				if got := metric(t, reg, m.name, m.labels); got != m.want {
					t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
				}
			}
		})
	}
}

// metric sums the samples of a metric family whose labels include want.
func metric(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestDriverServiceLeases covers the lease rules as a driver sees them:
// renewal, a lapsed lease taken over by another driver, the stale holder's
// reports refused with FailedPrecondition, and unknown jobs NotFound.
func TestDriverServiceLeases(t *testing.T) {
	f := start(t, jobs.Config{Lease: 600 * time.Millisecond, Recheck: 50 * time.Millisecond})
	ctx := t.Context()
	x, y := f.client(t, "driver-x"), f.client(t, "driver-y")
	w := f.hsmWallet(t)
	job := claim(t, x, time.Second)
	// Renewing keeps the job from y.
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		if _, err := x.RenewLease(ctx, connect.NewRequest(&driverv1.RenewLeaseRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId()})); err != nil {
			t.Fatalf("RenewLease: %v", err)
		}
	}
	if got := claim(t, y, 0); got != nil {
		t.Fatalf("driver-y claimed %s under a renewed lease", got.GetId())
	}
	// x stops renewing; y's long poll takes the job over once it lapses.
	taken := claim(t, y, 3*time.Second)
	if taken == nil || taken.GetId() != job.GetId() || taken.GetAttempt() != 1 {
		t.Fatalf("take-over claim = %v", taken)
	}
	key, _ := secp256k1.GeneratePrivateKey()
	err := f.completeKeygen(t, x, ctx, job, key.PubKey().SerializeCompressed())
	wantCode(t, err, connect.CodeFailedPrecondition)
	if ce := new(connect.Error); !errorsAs(err, &ce) || !bytes.Contains([]byte(ce.Message()), []byte("lease")) {
		t.Fatalf("stale completion message %q does not mention the lease", err)
	}
	_, err = x.RenewLease(ctx, connect.NewRequest(&driverv1.RenewLeaseRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId()}))
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = x.RenewLease(ctx, connect.NewRequest(&driverv1.RenewLeaseRequest{JobId: ids.New(ids.Job), LeaseId: job.GetLeaseId()}))
	wantCode(t, err, connect.CodeNotFound)
	if err := f.completeKeygen(t, y, ctx, taken, key.PubKey().SerializeCompressed()); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.st.GetWallet(ctx, w.ID); got.Status != store.WalletActive {
		t.Fatalf("wallet = %s", got.Status)
	}
	if n := metric(t, f.node.Registry, "sigil_hsm_jobs_released_total", map[string]string{"driver": "driver-y"}); n != 1 {
		t.Errorf("re-leased metric = %v, want 1", n)
	}
	// A permanent failure fails the wallet at once, with the reason.
	w2 := f.hsmWallet(t)
	j2 := claim(t, x, time.Second)
	if _, err := x.FailJob(ctx, connect.NewRequest(&driverv1.FailJobRequest{JobId: j2.GetId(), LeaseId: j2.GetLeaseId(), Error: "hsm: CKR_DEVICE_REMOVED"})); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.st.GetWallet(ctx, w2.ID); got.Status != store.WalletFailed || got.FailureReason != "hsm: CKR_DEVICE_REMOVED" {
		t.Fatalf("wallet after a permanent failure = %+v", got)
	}
}

// TestDriverServiceLongPoll checks a waiting claim wakes on NotifyWork at
// once, not at the next re-check, and that other roles are refused.
func TestDriverServiceLongPoll(t *testing.T) {
	f := start(t, jobs.Config{Recheck: time.Minute})
	x := f.client(t, "driver-x")
	got := make(chan *driverv1.Job, 1)
	go func() {
		resp, err := x.ClaimJob(context.Background(), connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(20 * time.Second)}))
		if err != nil {
			t.Error(err)
		}
		got <- resp.Msg.GetJob()
	}()
	time.Sleep(200 * time.Millisecond) // let the claim start waiting
	start := time.Now()
	w := f.hsmWallet(t)
	select {
	case job := <-got:
		if job == nil || job.GetWalletId() != w.ID {
			t.Fatalf("woken claim got %v", job)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("claim woke after %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting claim did not wake on NotifyWork")
	}
	// No job and a short wait: an empty answer, not an error.
	if job := claim(t, x, 100*time.Millisecond); job != nil {
		t.Fatalf("claimed %v from an empty queue", job)
	}
	signer := driverv1connect.NewDriverServiceClient(f.env.NodeClient(t, "signer-x"), f.node.URL)
	_, err := signer.ClaimJob(t.Context(), connect.NewRequest(&driverv1.ClaimJobRequest{}))
	wantCode(t, err, connect.CodePermissionDenied)
}

func errorsAs(err error, target **connect.Error) bool { return errors.As(err, target) }

// clock is a settable clock for the queue.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// TestDriverServiceLeaseOwnership: a lease belongs to the driver
// certificate that claimed it. Another driver that learned the job and
// lease ids can neither renew, complete nor fail it (PermissionDenied), and
// the holder itself cannot keep the job beyond the maximum lease life: the
// renewal at the cap is refused (FailedPrecondition) and the job goes to
// another driver. The queue's clock is injected; nothing sleeps.
func TestDriverServiceLeaseOwnership(t *testing.T) {
	// Ahead of the store's own clock, which stamps the job available.
	clk := &clock{now: time.Now().Add(time.Second)}
	f := start(t, jobs.Config{Lease: 10 * time.Second, MaxLease: 25 * time.Second, Recheck: time.Minute, Now: clk.Now})
	ctx := t.Context()
	x, y := f.client(t, "driver-x"), f.client(t, "driver-y")
	w := f.hsmWallet(t)
	job := claim(t, x, time.Second)
	if job == nil {
		t.Fatal("no job claimed")
	}
	renew := func(c driverv1connect.DriverServiceClient) (*driverv1.RenewLeaseResponse, error) {
		resp, err := c.RenewLease(ctx, connect.NewRequest(&driverv1.RenewLeaseRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId()}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}

	_, err := renew(y)
	wantCode(t, err, connect.CodePermissionDenied)
	if !strings.Contains(err.Error(), "driver-x") {
		t.Errorf("refusal %q does not name the lease holder", err)
	}
	key, _ := secp256k1.GeneratePrivateKey()
	wantCode(t, f.completeKeygen(t, y, ctx, job, key.PubKey().SerializeCompressed()), connect.CodePermissionDenied)
	_, err = y.FailJob(ctx, connect.NewRequest(&driverv1.FailJobRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId(), Error: "x"}))
	wantCode(t, err, connect.CodePermissionDenied)
	if got, _ := f.st.GetWallet(ctx, w.ID); got.Status != store.WalletCreating {
		t.Fatalf("driver-y's reports changed the wallet: %+v", got)
	}

	// x renews every 5 s: the lease may not outlive claim + 25 s, so the
	// third renewal (+15 s) is clipped to the cap and the fourth refused.
	capAt := clk.Now().Add(25 * time.Second)
	for i := range 3 {
		clk.Add(5 * time.Second)
		resp, err := renew(x)
		if err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		if exp := resp.GetLeaseExpireTime().AsTime(); exp.After(capAt) {
			t.Fatalf("renewal %d: lease until %s, beyond the cap %s", i, exp, capAt)
		}
	}
	clk.Add(5 * time.Second) // +20 s
	_, err = renew(x)
	wantCode(t, err, connect.CodeFailedPrecondition)
	if !strings.Contains(err.Error(), "maximum life") {
		t.Errorf("refusal at the cap %q does not say why", err)
	}
	if got := claim(t, y, 0); got != nil {
		t.Fatalf("driver-y claimed %s before the capped lease lapsed", got.GetId())
	}
	clk.Add(5 * time.Second) // +25 s: the cap
	taken := claim(t, y, 0)
	if taken == nil || taken.GetId() != job.GetId() || taken.GetAttempt() != 1 {
		t.Fatalf("claim by driver-y at the cap = %v, want the job re-leased", taken)
	}
	wantCode(t, f.completeKeygen(t, x, ctx, job, key.PubKey().SerializeCompressed()), connect.CodeFailedPrecondition)
}

// TestDriverServiceRefusesUnattestedKeys plays a client holding a driver
// certificate but no HSM: it completes keygen jobs with a public key whose
// private key it knows. Without an attestation, with one from an
// attestation key the coordinator does not pin, or with a real attestation
// of another wallet's key, the result is refused (PermissionDenied), the
// job and wallet fail with the reason, and the wallet never becomes active.
// The real-HSM side is TestKeyAttestation in hsm/driver, on SoftHSM2.
func TestDriverServiceRefusesUnattestedKeys(t *testing.T) {
	f := start(t, jobs.Config{Recheck: 20 * time.Millisecond})
	ctx := t.Context()
	x := f.client(t, "driver-x")
	key, _ := secp256k1.GeneratePrivateKey()
	pub := key.PubKey().SerializeCompressed()
	stranger, _ := stdecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name   string
		attest func(walletID string) *driverv1.KeyAttestation
		reason string
	}{
		{"none", func(string) *driverv1.KeyAttestation { return nil }, "not attested"},
		{"unpinned key", func(w string) *driverv1.KeyAttestation {
			r, s, _ := stdecdsa.Sign(rand.Reader, stranger, attest.Digest(w, pub))
			return &driverv1.KeyAttestation{KeyId: attest.KeyID(&stranger.PublicKey), Signature: append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)}
		}, "does not pin"},
		{"another wallet", func(string) *driverv1.KeyAttestation {
			id, sig := f.env.Attest(t, ids.New(ids.Wallet), pub)
			return &driverv1.KeyAttestation{KeyId: id, Signature: sig}
		}, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.hsmWallet(t)
			job := claim(t, x, 5*time.Second)
			if job == nil || job.GetWalletId() != w.ID {
				t.Fatalf("claimed %v, want the keygen job of %s", job, w.ID)
			}
			err := completeKeygenAttested(x, ctx, job, pub, tc.attest(w.ID))
			wantCode(t, err, connect.CodePermissionDenied)
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("refusal %q does not say %q", err, tc.reason)
			}
			got, _ := f.st.GetWallet(ctx, w.ID)
			if got.Status != store.WalletFailed || !strings.Contains(got.FailureReason, "attestation") || got.PublicKey != nil {
				t.Fatalf("wallet after a refused key = %+v, want failed over the attestation, with no key", got)
			}
		})
	}
	// The same key, attested by the pinned key for its wallet, is accepted.
	w := f.hsmWallet(t)
	job := claim(t, x, 5*time.Second)
	if err := f.completeKeygen(t, x, ctx, job, pub); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.st.GetWallet(ctx, w.ID); got.Status != store.WalletActive || !bytes.Equal(got.PublicKey, pub) {
		t.Fatalf("wallet with an attested key = %+v", got)
	}
}
