package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

// JobQueue is what DriverService needs of the job queue (jobs.Queue).
type JobQueue interface {
	Claim(ctx context.Context, driver string, wait time.Duration, n int) ([]*store.ClaimedJob, error)
	Renew(ctx context.Context, jobID, leaseID, driver string) (time.Time, error)
	Leased(ctx context.Context, jobID, leaseID string) (*store.ClaimedJob, error)
	LeasedMany(ctx context.Context, leases []store.JobLease) ([]*store.ClaimedJob, []error, error)
	CompleteJobs(ctx context.Context, results []store.JobResult) ([]error, error)
	Fail(ctx context.Context, jobID, leaseID, reason string, retryable bool) (store.JobState, error)
	Reject(ctx context.Context, jobID, leaseID, reason string) (store.JobState, error)
	Counts(ctx context.Context) (store.JobCounts, error)
}

// DefaultClaimWait is how long ClaimJob waits when the request says nothing.
const DefaultClaimWait = 30 * time.Second

// DriverServer implements DriverService for HSM drivers. It checks every
// result before the queue records it: a public key must be a point on
// secp256k1, and a signature must verify against the wallet's key and the
// request's digest (with ecsig, independently of the driver and its HSM).
// A result that fails the check counts as a failed attempt.
type DriverServer struct {
	queue       JobQueue
	attestation Attestation
	metrics     *driverMetrics
	logger      *slog.Logger
}

// Attestation is the coordinator's policy on HSM key attestation (see
// internal/attest): keys must be attested by one of Verifier's pinned
// attestation keys, unless AllowUnattested (development only) lets
// unattested keys in; attested ones are checked all the same. The zero
// value accepts no key.
type Attestation struct {
	Verifier        *attest.Verifier
	AllowUnattested bool
}

var _ driverv1connect.DriverServiceHandler = (*DriverServer)(nil)

// NewDriverServer returns the DriverService handler. Its metrics (per
// driver: jobs claimed, re-leased, completed, failed; the queue depth) are
// registered on reg.
func NewDriverServer(q JobQueue, att Attestation, reg prometheus.Registerer, logger *slog.Logger) (*DriverServer, error) {
	m, err := newDriverMetrics(reg, q)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DriverServer{queue: q, attestation: att, metrics: m, logger: logger}, nil
}

// ClaimJob leases the next job to the calling driver, waiting for one.
func (d *DriverServer) ClaimJob(ctx context.Context, req *connect.Request[driverv1.ClaimJobRequest]) (*connect.Response[driverv1.ClaimJobResponse], error) {
	driver, err := d.driver(ctx)
	if err != nil {
		return nil, err
	}
	wait := DefaultClaimWait
	if w := req.Msg.GetWait(); w != nil {
		wait = w.AsDuration()
	}
	claimed, err := d.queue.Claim(ctx, driver, wait, int(req.Msg.GetMaxJobs()))
	if err != nil {
		return nil, d.toConnect(ctx, err)
	}
	resp := &driverv1.ClaimJobResponse{}
	for i, cj := range claimed {
		d.metrics.claimed.WithLabelValues(driver, string(cj.Kind)).Inc()
		if cj.Released {
			d.metrics.released.WithLabelValues(driver).Inc()
			d.logger.InfoContext(ctx, "job re-leased after a lapsed lease", "job", cj.ID, "driver", driver, "attempt", cj.Attempts)
		}
		if i == 0 {
			resp.Job = jobMessage(cj)
		} else {
			resp.MoreJobs = append(resp.MoreJobs, jobMessage(cj))
		}
	}
	return connect.NewResponse(resp), nil
}

// jobMessage is a claimed job as the driver sees it.
func jobMessage(cj *store.ClaimedJob) *driverv1.Job {
	job := &driverv1.Job{
		Id:              cj.ID,
		WalletId:        cj.WalletID,
		SignatureId:     cj.SignatureID,
		LeaseId:         cj.LeaseID,
		LeaseExpireTime: timestamppb.New(cj.LeaseExpiresAt),
		Attempt:         uint32(max(cj.Attempts-1, 0)),
	}
	switch cj.Kind {
	case store.JobKeygen:
		job.Kind = driverv1.JobKind_JOB_KIND_KEYGEN
	case store.JobSign:
		job.Kind = driverv1.JobKind_JOB_KIND_SIGN
		job.Digest, job.PublicKey = cj.Digest, cj.PublicKey
		if sg := cj.Signature; sg != nil {
			job.SignedRequest, job.ExternalId = sg.SignedRequest, sg.ExternalID
			switch sg.Kind {
			case store.KindHash:
				job.SignatureKind, job.Payload = walletv1.SignatureKind_SIGNATURE_KIND_HASH, sg.Hash
			case store.KindEIP191:
				job.SignatureKind, job.Payload = walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE, []byte(sg.Message)
			}
		}
	}
	return job
}

// RenewLease extends the caller's lease. The lease is bound to the driver
// certificate that claimed it: a lease id alone, leaked from a log or
// another driver, renews nothing. A lease cannot be renewed beyond the
// queue's maximum lease life.
func (d *DriverServer) RenewLease(ctx context.Context, req *connect.Request[driverv1.RenewLeaseRequest]) (*connect.Response[driverv1.RenewLeaseResponse], error) {
	driver, err := d.driver(ctx)
	if err != nil {
		return nil, err
	}
	exp, err := d.queue.Renew(ctx, req.Msg.GetJobId(), req.Msg.GetLeaseId(), driver)
	if err != nil {
		return nil, d.toConnect(ctx, err)
	}
	return connect.NewResponse(&driverv1.RenewLeaseResponse{LeaseExpireTime: timestamppb.New(exp)}), nil
}

// CompleteJob checks and records a job's result.
func (d *DriverServer) CompleteJob(ctx context.Context, req *connect.Request[driverv1.CompleteJobRequest]) (*connect.Response[driverv1.CompleteJobResponse], error) {
	driver, err := d.driver(ctx)
	if err != nil {
		return nil, err
	}
	cj, err := d.leasedBy(ctx, driver, req.Msg.GetJobId(), req.Msg.GetLeaseId())
	if err != nil {
		return nil, err
	}
	res, err := d.check(ctx, driver, cj, req.Msg)
	if err != nil {
		return nil, err
	}
	errs, err := d.queue.CompleteJobs(ctx, []store.JobResult{*res})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return nil, d.toConnect(ctx, err)
	}
	d.metrics.completed.WithLabelValues(driver, string(res.Kind)).Inc()
	return connect.NewResponse(&driverv1.CompleteJobResponse{}), nil
}

// check checks the result of cj, a job under the caller's current lease
// (leasedBy): a public key must be a compressed secp256k1 point; a signature
// must verify against the wallet's key and the request's digest. A result
// that fails the check is recorded as a failed attempt and refused with
// InvalidArgument.
func (d *DriverServer) check(ctx context.Context, driver string, cj *store.ClaimedJob, m *driverv1.CompleteJobRequest) (*store.JobResult, error) {
	out := &store.JobResult{JobID: cj.ID, LeaseID: cj.LeaseID, Driver: driver, Kind: cj.Kind}
	switch res := m.GetResult().(type) {
	case *driverv1.CompleteJobRequest_Keygen:
		if cj.Kind != store.JobKeygen {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("job %s is a %s job: send a sign result", cj.ID, cj.Kind))
		}
		pub := res.Keygen.GetPublicKey()
		if _, perr := secp256k1.ParsePubKey(pub); perr != nil || len(pub) != 33 {
			return nil, d.reject(ctx, driver, cj, fmt.Sprintf("driver %s returned a public key that is not a compressed secp256k1 point", driver))
		}
		if aerr := d.checkAttestation(cj.WalletID, pub, res.Keygen.GetAttestation()); aerr != nil {
			return nil, d.refuse(ctx, driver, cj, fmt.Sprintf("HSM key attestation failed for the key driver %s returned: %v", driver, aerr))
		}
		out.PublicKey = pub
	case *driverv1.CompleteJobRequest_Sign:
		if cj.Kind != store.JobSign {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("job %s is a %s job: send a keygen result", cj.ID, cj.Kind))
		}
		raw := res.Sign.GetSignature()
		if len(raw) != 64 {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("sign.signature: want r || s, 64 bytes"))
		}
		// FromRSHint normalises S, verifies the exact (r, s) to be stored
		// against the wallet's key and the request's digest, and finds the
		// recovery id by public key recovery: what it returns is what is
		// stored, checked here, independently of the driver and its HSM.
		// The driver's recovery id only says which id to try first.
		sig, verr := ecsig.FromRSHint(raw[:32], raw[32:], cj.PublicKey, cj.Digest, byte(res.Sign.GetRecoveryId()))
		if verr != nil {
			return nil, d.reject(ctx, driver, cj, fmt.Sprintf("driver %s returned a signature that does not verify against the wallet's public key", driver))
		}
		out.R, out.S, out.RecoveryID = sig.R[:], sig.S[:], int(sig.V)
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("result: exactly one of keygen or sign is required"))
	}
	return out, nil
}

// reject counts an unacceptable result as a failed, retryable attempt:
// another attempt (perhaps on another driver) may do better, and after the
// last one the wallet or signature fails with the reason.
func (d *DriverServer) reject(ctx context.Context, driver string, cj *store.ClaimedJob, reason string) error {
	d.logger.WarnContext(ctx, "rejected an HSM job result", "job", cj.ID, "driver", driver, "reason", reason)
	state, err := d.queue.Fail(ctx, cj.ID, cj.LeaseID, reason, true)
	if err != nil {
		return d.toConnect(ctx, err)
	}
	d.metrics.failed.WithLabelValues(driver, string(cj.Kind), outcome(state)).Inc()
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s; the attempt was recorded as failed", reason))
}

// checkAttestation checks that an HSM the coordinator pins attested pub for
// the wallet. Without it, a client holding only a driver certificate could
// complete a keygen job with a key it knows and later sign for the wallet.
func (d *DriverServer) checkAttestation(walletID string, pub []byte, a *driverv1.KeyAttestation) error {
	if d.attestation.Verifier == nil {
		if d.attestation.AllowUnattested {
			return nil // development only
		}
		return errors.New("this coordinator pins no HSM attestation key (--hsm-attestation-key), so it accepts no HSM key")
	}
	err := d.attestation.Verifier.Verify(walletID, pub, a.GetKeyId(), a.GetSignature())
	if errors.Is(err, attest.ErrMissing) && d.attestation.AllowUnattested {
		return nil
	}
	return err
}

// refuse fails a job for good over a result no retry should be trusted
// with (an unattested key): the wallet fails with the reason and never
// becomes active.
func (d *DriverServer) refuse(ctx context.Context, driver string, cj *store.ClaimedJob, reason string) error {
	d.logger.WarnContext(ctx, "refused an HSM job result", "job", cj.ID, "wallet", cj.WalletID, "driver", driver, "reason", reason)
	state, err := d.queue.Fail(ctx, cj.ID, cj.LeaseID, reason, false)
	if err != nil {
		return d.toConnect(ctx, err)
	}
	d.metrics.failed.WithLabelValues(driver, string(cj.Kind), outcome(state)).Inc()
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s; the job and its wallet failed", reason))
}

// FailJob records a failed attempt.
func (d *DriverServer) FailJob(ctx context.Context, req *connect.Request[driverv1.FailJobRequest]) (*connect.Response[driverv1.FailJobResponse], error) {
	driver, err := d.driver(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	cj, err := d.leasedBy(ctx, driver, m.GetJobId(), m.GetLeaseId())
	if err != nil {
		return nil, err
	}
	var state store.JobState
	if m.GetRejected() && cj.Kind == store.JobSign {
		state, err = d.queue.Reject(ctx, cj.ID, cj.LeaseID, fmt.Sprintf("%s refused to sign: %s", driver, m.GetError()))
	} else {
		state, err = d.queue.Fail(ctx, cj.ID, cj.LeaseID, m.GetError(), m.GetRetryable())
	}
	if err != nil {
		return nil, d.toConnect(ctx, err)
	}
	d.metrics.failed.WithLabelValues(driver, string(cj.Kind), outcome(state)).Inc()
	d.logger.InfoContext(ctx, "HSM job attempt failed", "job", cj.ID, "driver", driver, "retryable", m.GetRetryable(), "rejected", m.GetRejected(),
		"state", state, "error", m.GetError())
	return connect.NewResponse(&driverv1.FailJobResponse{}), nil
}

// driver returns the calling driver's name.
func (d *DriverServer) driver(ctx context.Context) (string, error) {
	id, err := requireRole(ctx, pki.RoleDriver)
	if err != nil {
		return "", err
	}
	return id.Name, nil
}

// leasedBy loads a job under a current lease held by driver.
func (d *DriverServer) leasedBy(ctx context.Context, driver, jobID, leaseID string) (*store.ClaimedJob, error) {
	cj, err := d.queue.Leased(ctx, jobID, leaseID)
	return d.heldBy(ctx, driver, jobID, cj, err)
}

// heldBy turns the lookup of a leased job into what the driver is told:
// the job when driver holds its lease, a Connect error otherwise.
func (d *DriverServer) heldBy(ctx context.Context, driver, jobID string, cj *store.ClaimedJob, err error) (*store.ClaimedJob, error) {
	if err != nil {
		return nil, d.toConnect(ctx, err)
	}
	if cj.LeasedBy != driver {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("job %s is leased to another driver", jobID))
	}
	return cj, nil
}

// toConnect maps queue errors with the mapper both ports share; a lease
// that is no longer current says so, with its own reason.
func (d *DriverServer) toConnect(ctx context.Context, err error) error {
	if errors.Is(err, store.ErrStateConflict) {
		return wire.Errorf(connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_LEASE_LOST,
			"lease no longer current (it lapsed or another driver took the job over); drop the job: %v", err)
	}
	return wire.ToConnect(ctx, d.logger, err)
}

func outcome(s store.JobState) string {
	if s == store.JobQueued {
		return "retry"
	}
	return "failed"
}

type driverMetrics struct {
	claimed, released, completed, failed *prometheus.CounterVec
}

func newDriverMetrics(reg prometheus.Registerer, q JobQueue) (*driverMetrics, error) {
	m := &driverMetrics{
		claimed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_hsm_jobs_claimed_total", Help: "HSM jobs leased to a driver, by driver and kind.",
		}, []string{"driver", "kind"}),
		released: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_hsm_jobs_released_total", Help: "HSM jobs leased again after another driver's lease lapsed, by the driver that took them over.",
		}, []string{"driver"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_hsm_jobs_completed_total", Help: "HSM jobs completed with a verified result, by driver and kind.",
		}, []string{"driver", "kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_hsm_jobs_failed_total", Help: "Failed HSM job attempts, by driver, kind and outcome (retry: queued again; failed: for good).",
		}, []string{"driver", "kind", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.claimed, m.released, m.completed, m.failed, queueDepth{q}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register HSM job metrics: %w", err)
		}
	}
	return m, nil
}

// queueDepth reads the queue's size from the database at each scrape, so it
// is right across coordinator replicas.
type queueDepth struct{ q JobQueue }

var queueDepthDesc = prometheus.NewDesc("sigil_hsm_queue_jobs",
	"Open HSM jobs by state: queued (waiting for a driver), leased (held by one), lapsed (leased, lease expired, claimable).",
	[]string{"state"}, nil)

func (queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- queueDepthDesc }

func (c queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.q.Counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
		return
	}
	for state, n := range map[string]int{"queued": counts.Queued, "leased": counts.Leased, "lapsed": counts.Lapsed} {
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(n), state)
	}
}
