// Package driver is `sigil hsm-driver`: it polls the coordinator's
// DriverService for HSM jobs over mTLS and runs them on a PKCS#11 token.
//
// A keygen job generates a secp256k1 key in the HSM, stores the wrapped
// blob in the driver database (durably, before the coordinator hears of the
// key) and reports the public key. A sign job loads the blob, has the HSM
// unwrap it and sign, and reports r || s; the coordinator verifies the
// signature before it calls the request signed. The HSM keeps no per-wallet
// state, so every driver whose HSM holds the same master key and which
// shares the driver database can take any job: drivers are active-active,
// and a dead driver's leases lapse and go to the others.
package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/guard"
)

// HSM is what the driver needs of its token (an *hsm.HSM).
type HSM interface {
	GenerateKey(ctx context.Context) (pub, wrapped []byte, err error)
	// Attest signs, with the token's attestation key, the statement that
	// binds walletID to pub (see internal/attest).
	Attest(ctx context.Context, walletID string, pub []byte) (keyID, signature []byte, err error)
	Sign(ctx context.Context, wrapped, pub, digest []byte) (ecsig.Signature, error)
}

// Defaults.
const (
	DefaultClaimWait = 30 * time.Second
	// reportTries bounds how often a result is sent when the coordinator
	// is unreachable; the lease bounds it too.
	reportTries = 5
)

// Driver runs jobs from one coordinator on one HSM.
type Driver struct {
	client      driverv1connect.DriverServiceClient
	hsm         HSM
	keys        *KeyStore
	cache       *keyCache
	fingerprint string
	concurrency int
	hsmSlots    chan struct{} // Concurrency places in the HSM
	// working counts the jobs claimed and not yet handed to the reporter
	// (or failed): while there are some, more results are coming. idle
	// tells the reporter when the count falls to zero.
	working   atomic.Int64
	idle      chan struct{}
	claimWait time.Duration
	logger    *slog.Logger
	metrics   *Metrics
	guard     *guard.Guard

	// afterComplete, when set (tests), is called after the coordinator
	// accepted a result.
	afterComplete func(job *driverv1.Job)
}

// Options assemble a Driver from parts; Open builds them from a Config.
type Options struct {
	Client      driverv1connect.DriverServiceClient
	HSM         HSM
	Keys        *KeyStore
	Fingerprint string // the HSM's master key fingerprint, stored with each key
	Concurrency int    // jobs at once (default 1)
	ClaimWait   time.Duration
	Logger      *slog.Logger
	Metrics     *Metrics // nil: not recorded
	// Guard decides whether a sign job is signed (request signature,
	// validation gate, journal); Open always sets it. Nil (bare drivers in
	// tests) signs every job.
	Guard *guard.Guard
	// AfterComplete is called after each accepted result (for tests).
	AfterComplete func(job *driverv1.Job)
}

// New returns a driver.
func New(o Options) *Driver {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.ClaimWait <= 0 {
		o.ClaimWait = DefaultClaimWait
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Driver{
		client: o.Client, hsm: o.HSM, keys: o.Keys, cache: newKeyCache(o.Keys), fingerprint: o.Fingerprint, concurrency: o.Concurrency,
		hsmSlots: make(chan struct{}, o.Concurrency), idle: make(chan struct{}, 1), claimWait: o.ClaimWait, logger: o.Logger, metrics: o.Metrics, afterComplete: o.AfterComplete,
		guard: o.Guard,
	}
}

// Run polls for jobs with Concurrency workers until ctx ends. Jobs in
// flight or claimed when ctx ends are finished (their leases bound how
// long) rather than abandoned, so a graceful stop wastes no work.
//
// A job goes through three stages: claimed, in the HSM (at most
// Concurrency at once), reported. One claimer long-polls for as many jobs
// as there are free places, and one reporter sends the results that
// finished meanwhile in one CompleteJobs: under load each round trip, and
// each commit at the coordinator, carries several jobs. Each job keeps its
// place (and its lease) until the coordinator recorded its result, and
// there are pipelineDepth places per HSM place, so that the HSM works on
// the next jobs while the results of the last ones travel.
func (d *Driver) Run(ctx context.Context) error {
	capacity := pipelineDepth * d.concurrency
	jobs := make(chan *driverv1.Job, capacity)
	free := make(chan struct{}, capacity)
	for range capacity {
		free <- struct{}{}
	}
	rep := newReporter(d)
	repCtx, stopReporter := context.WithCancel(context.WithoutCancel(ctx))
	repDone := make(chan struct{})
	go func() { defer close(repDone); rep.run(repCtx) }()

	var wg sync.WaitGroup
	for i := range capacity {
		logger := d.logger.With("worker", i)
		wg.Go(func() {
			for job := range jobs {
				d.run(ctx, logger, rep, job)
				free <- struct{}{}
			}
		})
	}
	d.claimLoop(ctx, jobs, free, capacity)
	close(jobs)
	wg.Wait()
	stopReporter()
	<-repDone
	return nil
}

// claimLoop claims jobs for the free places until ctx ends. While the
// queue is busy (the last claim got all it asked for), it waits until half
// the places are free (at most maxGather) and claims for all of them at
// once: one round trip and one transaction at the coordinator for many
// jobs, rather than one per job as each finishes; the jobs still held keep
// the HSM busy meanwhile. When the queue runs dry it claims as soon as a
// place is free.
func (d *Driver) claimLoop(ctx context.Context, jobs chan<- *driverv1.Job, free chan struct{}, capacity int) {
	batch := min(max(capacity/2, 1), maxClaim)
	busy := false
	var failures int
	for {
		select {
		case <-ctx.Done():
			return
		case <-free:
		}
		n := 1
		var gather <-chan time.Time // while busy: how long to wait for a batch
		var timer *time.Timer
		if busy {
			timer = time.NewTimer(maxGather)
			gather = timer.C
		}
	more:
		for n < maxClaim {
			if gather != nil && n < batch {
				select {
				case <-free:
					n++
				case <-gather:
					gather = nil // claim what is free: jobs that hold their places long must not idle the rest
				case <-ctx.Done():
					return
				}
				continue
			}
			select {
			case <-free:
				n++
			default:
				break more
			}
		}
		if timer != nil {
			timer.Stop()
		}
		got, err := d.claim(ctx, n)
		busy = err == nil && len(got) == n
		for range n - len(got) {
			free <- struct{}{}
		}
		for _, job := range got {
			jobs <- job
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := backoff(failures)
			d.metrics.claimErrors.Inc()
			d.logger.WarnContext(ctx, "claiming a job failed; retrying", "error", err, "retry_in", delay)
			sleep(ctx, delay)
			continue
		}
		failures = 0
	}
}

// pipelineDepth is how many jobs a driver holds per HSM place: one in the
// HSM, the others claimed and waiting or reported and awaiting the
// coordinator's answer. Deep enough that the HSM keeps working while
// claims gather and results linger and travel in batches; the leases of
// the jobs held are renewed all along.
const pipelineDepth = 16

// maxGather bounds how long a claim waits for half the places to be free
// while the queue is busy.
const maxGather = 50 * time.Millisecond

// maxClaim bounds the jobs one claim asks for (the protocol allows 64).
const maxClaim = 32

func (d *Driver) claim(ctx context.Context, n int) ([]*driverv1.Job, error) {
	// The server answers within the wait; the margin covers the network.
	callCtx, cancel := context.WithTimeout(ctx, d.claimWait+15*time.Second)
	defer cancel()
	resp, err := d.client.ClaimJob(callCtx, connect.NewRequest(&driverv1.ClaimJobRequest{
		Wait: durationpb.New(d.claimWait), MaxJobs: uint32(n),
	}))
	if err != nil {
		return nil, err
	}
	var got []*driverv1.Job
	if job := resp.Msg.GetJob(); job != nil {
		got = append(got, job)
	}
	more := resp.Msg.GetMoreJobs()
	if len(got)+len(more) > n {
		// More than asked for: run what fits, the rest lapse to others.
		more = more[:max(n-len(got), 0)]
	}
	return append(got, more...), nil
}

// errLeaseLost cancels a job whose lease the coordinator no longer honours.
var errLeaseLost = errors.New("lease lost: the coordinator gave the job to another driver")

// doneWorking counts a job out of working, telling the reporter when none
// is left.
func (d *Driver) doneWorking() {
	if d.working.Add(-1) == 0 {
		select {
		case d.idle <- struct{}{}:
		default:
		}
	}
}

// run does one job under its lease and reports the outcome.
func (d *Driver) run(ctx context.Context, logger *slog.Logger, rep *reporter, job *driverv1.Job) {
	logger = logger.With("job", job.GetId(), "kind", job.GetKind().String(), "wallet", job.GetWalletId(), "attempt", job.GetAttempt())
	start := time.Now()
	d.working.Add(1)
	var handedOver bool
	handOver := func() {
		if !handedOver {
			handedOver = true
			d.doneWorking()
		}
	}
	defer handOver()
	jobCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		d.keepLease(jobCtx, cancel, logger, job)
	}()
	defer func() { cancel(nil); <-renewDone }()

	req, err := d.work(jobCtx, logger, job)
	if cause := context.Cause(jobCtx); errors.Is(cause, errLeaseLost) {
		d.metrics.jobs.WithLabelValues(kindLabel(job), "dropped").Inc()
		logger.WarnContext(ctx, "job dropped", "reason", cause)
		return
	}
	if err != nil {
		retryable := !isPermanent(err)
		var refusal *guard.Refusal
		rejected := errors.As(err, &refusal)
		logger.WarnContext(ctx, "job failed", "error", err, "retryable", retryable, "rejected", rejected)
		msg := err.Error()
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		err = d.report(jobCtx, logger, "FailJob", func(c context.Context) error {
			_, err := d.client.FailJob(c, connect.NewRequest(&driverv1.FailJobRequest{
				JobId: job.GetId(), LeaseId: job.GetLeaseId(), Error: msg, Retryable: retryable, Rejected: rejected,
			}))
			return err
		})
		outcome := "failed"
		if code := connect.CodeOf(err); code == connect.CodeFailedPrecondition || code == connect.CodePermissionDenied {
			outcome = "dropped" // the lease lapsed meanwhile: the job is no longer this driver's
		}
		d.metrics.jobs.WithLabelValues(kindLabel(job), outcome).Inc()
		return
	}
	req.JobId, req.LeaseId = job.GetId(), job.GetLeaseId()
	handOver()
	if err := rep.complete(jobCtx, req); err == nil {
		d.metrics.jobs.WithLabelValues(kindLabel(job), "completed").Inc()
		d.metrics.jobSeconds.WithLabelValues(kindLabel(job)).Observe(time.Since(start).Seconds())
		logger.DebugContext(ctx, "job completed", "duration", time.Since(start))
		if d.afterComplete != nil {
			d.afterComplete(job)
		}
	} else {
		d.metrics.jobs.WithLabelValues(kindLabel(job), "dropped").Inc()
	}
}

// work runs a job and returns the result to report. Only the HSM's part
// holds one of the Concurrency places: a sign job's decision (request
// signature, gate, journal) is made before, so that the decisions of the
// jobs waiting for the HSM are journaled together (see journal.Append).
func (d *Driver) work(ctx context.Context, logger *slog.Logger, job *driverv1.Job) (*driverv1.CompleteJobRequest, error) {
	switch job.GetKind() {
	case driverv1.JobKind_JOB_KIND_KEYGEN:
		release, err := d.hsmPlace(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
		key, err := d.keygen(ctx, logger, job)
		if err != nil {
			return nil, err
		}
		return &driverv1.CompleteJobRequest{Result: &driverv1.CompleteJobRequest_Keygen{Keygen: &driverv1.KeygenJobResult{
			PublicKey:   key.PublicKey,
			Attestation: &driverv1.KeyAttestation{KeyId: key.AttestationKeyID, Signature: key.Attestation},
		}}}, nil
	case driverv1.JobKind_JOB_KIND_SIGN:
		sig, err := d.sign(ctx, job)
		if err != nil {
			return nil, err
		}
		res := &driverv1.SignJobResult{Signature: append(sig.R[:], sig.S[:]...)}
		if sig.V <= 1 {
			res.RecoveryId = proto.Uint32(uint32(sig.V)) // saves the coordinator's check a recovery
		}
		return &driverv1.CompleteJobRequest{Result: &driverv1.CompleteJobRequest_Sign{Sign: res}}, nil
	default:
		return nil, permanent(fmt.Errorf("job kind %v is not supported by this driver", job.GetKind()))
	}
}

// hsmPlace waits for one of the Concurrency places in the HSM.
func (d *Driver) hsmPlace(ctx context.Context) (release func(), err error) {
	select {
	case d.hsmSlots <- struct{}{}:
		return func() { <-d.hsmSlots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// report sends a result, retrying while the coordinator is unreachable. It
// returns nil when the coordinator accepted it.
func (d *Driver) report(ctx context.Context, logger *slog.Logger, what string, send func(context.Context) error) error {
	for try := 1; ; try++ {
		callCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := send(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeUnknown, connect.CodeInternal:
			if try < reportTries && ctx.Err() == nil {
				logger.WarnContext(ctx, what+" failed; retrying", "error", err, "try", try)
				sleep(ctx, backoff(try))
				continue
			}
		}
		// FailedPrecondition or NotFound: the lease is gone and so is the
		// job, for us. InvalidArgument: the coordinator rejected the result
		// and recorded a failed attempt.
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			logger.WarnContext(ctx, what+" refused; job dropped", "error", err)
		}
		return err
	}
}

// keepLease renews the job's lease at a third of its remaining length, and
// cancels the job when the coordinator says the lease is gone.
func (d *Driver) keepLease(ctx context.Context, cancel context.CancelCauseFunc, logger *slog.Logger, job *driverv1.Job) {
	expires := job.GetLeaseExpireTime().AsTime()
	for {
		interval := max(time.Until(expires)/3, 50*time.Millisecond)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		callCtx, stop := context.WithTimeout(ctx, interval)
		resp, err := d.client.RenewLease(callCtx, connect.NewRequest(&driverv1.RenewLeaseRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId()}))
		stop()
		switch {
		case err == nil:
			expires = resp.Msg.GetLeaseExpireTime().AsTime()
		case ctx.Err() != nil:
			return
		case connect.CodeOf(err) == connect.CodeFailedPrecondition, connect.CodeOf(err) == connect.CodeNotFound:
			cancel(fmt.Errorf("%w: %v", errLeaseLost, err))
			return
		default:
			logger.WarnContext(ctx, "renewing the lease failed; will retry", "error", err)
		}
	}
}

// keygen makes the wallet's key and the HSM's attestation of it, or reuses
// the ones an earlier attempt stored, and returns them. The wrapped key is
// durable before this returns: a wallet must never become active with a
// key nobody kept.
func (d *Driver) keygen(ctx context.Context, logger *slog.Logger, job *driverv1.Job) (*WrappedKey, error) {
	walletID := job.GetWalletId()
	existing, err := d.keys.Get(ctx, walletID)
	switch {
	case err == nil:
		logger.InfoContext(ctx, "reusing the key an earlier attempt stored")
		return attested(existing)
	case !errors.Is(err, ErrNoKey):
		return nil, err
	}
	pub, wrapped, err := d.hsm.GenerateKey(ctx)
	if err != nil {
		return nil, classify(err)
	}
	defer clear(wrapped)
	keyID, attestation, err := d.hsm.Attest(ctx, walletID, pub)
	if err != nil {
		return nil, classify(err)
	}
	stored, err := d.keys.Put(ctx, &WrappedKey{WalletID: walletID, PublicKey: pub, Wrapped: wrapped, MasterKeyFingerprint: d.fingerprint,
		AttestationKeyID: keyID, Attestation: attestation})
	if err != nil {
		return nil, err
	}
	return attested(stored)
}

// attested refuses a stored key without the attestation of the HSM that
// made it: attesting it now would vouch for whatever the database holds.
func attested(key *WrappedKey) (*WrappedKey, error) {
	if len(key.Attestation) == 0 {
		return nil, permanent(fmt.Errorf("the driver database holds a key for wallet %s without an HSM attestation "+
			"(stored before attestation existed); it cannot be attested now", key.WalletID))
	}
	return key, nil
}

// sign has the HSM sign the job's digest with the wallet's wrapped key,
// once the guard has approved (and journaled) it.
func (d *Driver) sign(ctx context.Context, job *driverv1.Job) (ecsig.Signature, error) {
	if err := d.authorize(ctx, job); err != nil {
		return ecsig.Signature{}, err
	}
	key, err := d.cache.Get(ctx, job.GetWalletId())
	if errors.Is(err, ErrNoKey) {
		return ecsig.Signature{}, permanent(fmt.Errorf("%w (is every driver using the same --database-url?)", err))
	}
	if err != nil {
		return ecsig.Signature{}, err
	}
	if !bytes.Equal(key.PublicKey, job.GetPublicKey()) {
		return ecsig.Signature{}, permanent(fmt.Errorf("the driver database's key for wallet %s does not match the wallet's public key", job.GetWalletId()))
	}
	if key.MasterKeyFingerprint != d.fingerprint {
		// Another driver, provisioned with the right master key, may
		// succeed: retryable.
		return ecsig.Signature{}, fmt.Errorf("wallet %s was wrapped under master key %s, but this HSM holds master key %s",
			job.GetWalletId(), key.MasterKeyFingerprint, d.fingerprint)
	}
	release, err := d.hsmPlace(ctx)
	if err != nil {
		return ecsig.Signature{}, err
	}
	defer release()
	sig, err := d.hsm.Sign(ctx, key.Wrapped, key.PublicKey, job.GetDigest())
	if err != nil {
		return ecsig.Signature{}, classify(err)
	}
	return sig, nil
}

// permanentError marks a failure that no retry can fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// classify marks the HSM errors a retry cannot fix: a blob the HSM rejects
// or that signs for another key, and malformed input.
func classify(err error) error {
	if errors.Is(err, hsm.ErrWrappedKey) || errors.Is(err, hsm.ErrSignature) || errors.Is(err, hsm.ErrInvalidInput) {
		return permanent(err)
	}
	return err
}

func kindLabel(job *driverv1.Job) string {
	switch job.GetKind() {
	case driverv1.JobKind_JOB_KIND_KEYGEN:
		return "keygen"
	case driverv1.JobKind_JOB_KIND_SIGN:
		return "sign"
	}
	return "unknown"
}

// backoff is the wait after n consecutive failures: 100 ms doubling to
// 10 s, with jitter so that drivers do not retry in step.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n-1, 7)
	d = min(d, 10*time.Second)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
