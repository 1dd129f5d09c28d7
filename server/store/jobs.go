package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

// JobQueue is the HSM job queue: drivers claim jobs under a lease, renew it
// while they work, and complete or fail them. Every method takes the time
// to act at, so that the queue (and its tests) own the clock.
//
// A lease is current while the job is leased under that lease id and the
// lease has not expired. Once it expires the job is claimable again; a
// report under an expired or taken-over lease is ErrStateConflict, and an
// unknown job is ErrNotFound.
type JobQueue interface {
	// ClaimJob leases the oldest claimable job to a driver: a queued job
	// whose available_at has come, or a leased job whose lease lapsed (a
	// re-lease). It returns nil, nil when there is none.
	ClaimJob(ctx context.Context, c Claim) (*ClaimedJob, error)
	// ClaimJobs leases up to len(c.LeaseIDs) claimable jobs at once, oldest
	// first, one lease id each, in one transaction. It returns none when
	// there is none.
	ClaimJobs(ctx context.Context, c Claim) ([]*ClaimedJob, error)
	// RenewLease extends a current lease held by r.Driver to r.Now+r.LeaseFor,
	// but never beyond the lease's grant time plus r.MaxLife: a lease
	// renewed up to its cap then lapses, and the job is claimable again.
	// A lease held by another driver is ErrNotLeaseHolder; a lease already
	// at its cap is ErrStateConflict.
	RenewLease(ctx context.Context, r Renewal) (time.Time, error)
	// LeasedJob returns the job under a current lease, with what its
	// result must be checked against.
	LeasedJob(ctx context.Context, jobID, leaseID string, now time.Time) (*ClaimedJob, error)
	LeasedJobs(ctx context.Context, leases []JobLease, now time.Time) ([]*ClaimedJob, []error, error)
	// CompleteKeygenJob activates the job's wallet with its public key and
	// marks the job done, in one transaction.
	CompleteKeygenJob(ctx context.Context, jobID, leaseID string, now time.Time, publicKey []byte) error
	// CompleteSignJob records the signature (r, s with S low, recovery id)
	// as signed and marks the job done, in one transaction. The caller has
	// verified the signature against the wallet's key.
	CompleteSignJob(ctx context.Context, jobID, leaseID string, now time.Time, r, s []byte, recoveryID int) error
	// CompleteJobs records several checked results in one transaction. The
	// i-th error is that of results[i] (nil when recorded; ErrStateConflict
	// or ErrNotFound as for one result); the last return is an error that
	// recorded none of them.
	CompleteJobs(ctx context.Context, now time.Time, results []JobResult) ([]error, error)
	// FailJob records a failed attempt: a retryable failure with attempts
	// left requeues the job after a backoff; otherwise the job fails and
	// its wallet or signature fails with the reason. It returns the job's
	// new state (JobQueued or JobFailed).
	FailJob(ctx context.Context, f JobFailure) (JobState, error)
	// ReleaseJob hands a job straight back to the queue, uncounted, when
	// the claim never reached its driver (the long poll was cancelled as
	// the job was claimed). It is a no-op when the lease is not current.
	ReleaseJob(ctx context.Context, jobID, leaseID string) error
	// JobCounts counts the open jobs, for the queue depth gauge.
	JobCounts(ctx context.Context, now time.Time) (JobCounts, error)
}

// ReleaseJob undoes a claim whose driver never saw it. See JobQueue.
func (s *SQL) ReleaseJob(ctx context.Context, jobID, leaseID string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_id = '',
		leased_by = '', lease_expires_at = 0, updated_at = ? WHERE id = ? AND lease_id = ? AND state = 'leased'`),
		micros(s.now()), jobID, leaseID)
	if err != nil {
		return fmt.Errorf("release job %s: %w", jobID, err)
	}
	return nil
}

var _ JobQueue = (*SQL)(nil)

// Claim asks for a job.
type Claim struct {
	Driver   string        // the claiming driver's certificate name
	LeaseID  string        // a fresh lease id (ids.New(ids.Lease))
	Now      time.Time     // the time of the claim
	LeaseFor time.Duration // the lease's length
	// MaxAttempts bounds how often a job whose lease keeps lapsing (its
	// driver dies on it) is leased: a lapsed job that reached it fails
	// instead of being leased again. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// LeaseIDs are fresh lease ids for ClaimJobs, one per job wanted: their
	// number is the most jobs one claim leases.
	LeaseIDs []string
}

// Renewal asks to extend a lease.
type Renewal struct {
	JobID, LeaseID string
	Driver         string        // the renewing driver's certificate name
	Now            time.Time     // the time of the renewal
	LeaseFor       time.Duration // the lease's length
	MaxLife        time.Duration // the longest a lease may last from its grant, renewals included
}

// ClaimedJob is a leased job and what the driver needs to do it.
type ClaimedJob struct {
	Job
	// Digest is the 32-byte digest a sign job signs.
	Digest []byte
	// PublicKey is the wallet's compressed public key (sign jobs).
	PublicKey []byte
	// Signature is the signature request a sign job serves, for what the
	// driver checks on its own (payload, signed request).
	Signature *Signature
	// Released is true when the job was taken over from a driver whose
	// lease lapsed.
	Released bool
}

// JobFailure reports a failed attempt.
type JobFailure struct {
	JobID, LeaseID string
	Now            time.Time
	Reason         string
	Retryable      bool
	// Rejected: the driver refused to sign (policy, request signature or
	// validation gate): the signature becomes REJECTED, never retried.
	Rejected bool
	Retry    RetryPolicy
}

// RetryPolicy bounds and spaces the attempts of a job.
type RetryPolicy struct {
	// MaxAttempts is how many attempts a job gets in all. Default 5.
	MaxAttempts int
	// Backoff is the wait after the first failed attempt; it doubles with
	// each further failure, up to MaxBackoff. Defaults 1 s and 1 min.
	Backoff, MaxBackoff time.Duration
}

// Retry defaults.
const (
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Minute
)

// WithDefaults fills unset fields.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.Backoff <= 0 {
		p.Backoff = DefaultBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	return p
}

// Delay is the wait before the next attempt after `attempts` attempts.
func (p RetryPolicy) Delay(attempts int) time.Duration {
	p = p.WithDefaults()
	d := p.Backoff
	for i := 1; i < attempts && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// JobCounts is the size of the queue.
type JobCounts struct {
	Queued int // waiting for a driver (ready or backing off)
	Leased int // held by a driver under a lease, lapsed or not
	Lapsed int // of Leased, those whose lease expired (claimable again)
}

const jobColumns = `seq, id, kind, wallet_id, signature_id, state, attempts, lease_id, leased_by,
	leased_at, lease_expires_at, available_at, last_error, created_at, updated_at`

type jobRow struct {
	Seq            int64          `db:"seq"`
	ID             string         `db:"id"`
	Kind           string         `db:"kind"`
	WalletID       string         `db:"wallet_id"`
	SignatureID    sql.NullString `db:"signature_id"`
	State          string         `db:"state"`
	Attempts       int            `db:"attempts"`
	LeaseID        string         `db:"lease_id"`
	LeasedBy       string         `db:"leased_by"`
	LeasedAt       int64          `db:"leased_at"`
	LeaseExpiresAt int64          `db:"lease_expires_at"`
	AvailableAt    int64          `db:"available_at"`
	LastError      string         `db:"last_error"`
	CreatedAt      int64          `db:"created_at"`
	UpdatedAt      int64          `db:"updated_at"`
}

func (r *jobRow) job() Job {
	return Job{
		Seq: r.Seq, ID: r.ID, Kind: JobKind(r.Kind), WalletID: r.WalletID, SignatureID: r.SignatureID.String,
		State: JobState(r.State), Attempts: r.Attempts, LeaseID: r.LeaseID, LeasedBy: r.LeasedBy,
		LeasedAt: fromMicros(r.LeasedAt), LeaseExpiresAt: fromMicros(r.LeaseExpiresAt), AvailableAt: fromMicros(r.AvailableAt),
		LastError: r.LastError, CreatedAt: fromMicros(r.CreatedAt), UpdatedAt: fromMicros(r.UpdatedAt),
	}
}

// forUpdate locks the selected rows on PostgreSQL; on SQLite the BEGIN
// IMMEDIATE of every transaction already serialises writers.
func (s *SQL) forUpdate(skipLocked bool) string {
	if s.db.Dialect != db.Postgres {
		return ""
	}
	if skipLocked {
		return ` FOR UPDATE SKIP LOCKED`
	}
	return ` FOR UPDATE`
}

// maxLapsedPerClaim bounds how many exhausted lapsed jobs one claim fails
// on its way to a claimable one, so a claim stays short.
const maxLapsedPerClaim = 16

// ClaimJob leases the oldest claimable job. See JobQueue.
func (s *SQL) ClaimJob(ctx context.Context, c Claim) (*ClaimedJob, error) {
	c.LeaseIDs = []string{c.LeaseID}
	jobs, err := s.ClaimJobs(ctx, c)
	if err != nil || len(jobs) == 0 {
		return nil, err
	}
	return jobs[0], nil
}

// lockedLeasedJob loads a job under a current lease and locks its row (on
// PostgreSQL) for the rest of tx.
func (s *SQL) lockedLeasedJob(ctx context.Context, tx *sqlx.Tx, jobID, leaseID string, now int64) (*Job, error) {
	var r jobRow
	err := tx.GetContext(ctx, &r, tx.Rebind(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`+s.forUpdate(false)), jobID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, jobID)
	}
	if err != nil {
		return nil, fmt.Errorf("select job %s: %w", jobID, err)
	}
	job := r.job()
	if err := leaseCurrent(&job, leaseID, now); err != nil {
		return nil, err
	}
	return &job, nil
}

// leaseCurrent explains why a lease is not current, or returns nil.
func leaseCurrent(job *Job, leaseID string, now int64) error {
	switch {
	case job.LeaseID != leaseID:
		return fmt.Errorf("%w: the lease on job %s was taken over by another driver", ErrStateConflict, job.ID)
	case job.State != JobLeased:
		return fmt.Errorf("%w: job %s is %s, no longer leased", ErrStateConflict, job.ID, job.State)
	case micros(job.LeaseExpiresAt) <= now:
		return fmt.Errorf("%w: the lease on job %s lapsed at %s", ErrStateConflict, job.ID, job.LeaseExpiresAt.Format(time.RFC3339Nano))
	}
	return nil
}

// RenewLease extends a current lease. See JobQueue.
func (s *SQL) RenewLease(ctx context.Context, r Renewal) (time.Time, error) {
	if r.Driver == "" || r.LeaseFor <= 0 || r.MaxLife <= 0 {
		return time.Time{}, errors.New("store: renewal needs a driver, a lease length and a maximum lease life")
	}
	now := micros(r.Now)
	var expires time.Time
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		job, err := s.lockedLeasedJob(ctx, tx, r.JobID, r.LeaseID, now)
		if err != nil {
			return err
		}
		if job.LeasedBy != r.Driver {
			return fmt.Errorf("%w: job %s is leased to driver %s, not %s", ErrNotLeaseHolder, job.ID, job.LeasedBy, r.Driver)
		}
		limit := job.LeasedAt.Add(r.MaxLife)
		if !r.Now.Before(limit) || micros(job.LeaseExpiresAt) >= micros(limit) {
			return fmt.Errorf("%w: the lease on job %s reached its maximum life of %s (granted %s); it lapses at %s",
				ErrStateConflict, job.ID, r.MaxLife, job.LeasedAt.Format(time.RFC3339), job.LeaseExpiresAt.Format(time.RFC3339Nano))
		}
		expires = fromMicros(min(micros(r.Now.Add(r.LeaseFor)), micros(limit)))
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET lease_expires_at = ?, updated_at = ? WHERE id = ?`),
			micros(expires), now, r.JobID)
		if err != nil {
			return fmt.Errorf("renew lease on job %s: %w", r.JobID, err)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return expires, nil
}

// CompleteKeygenJob activates the wallet. See JobQueue.
func (s *SQL) CompleteKeygenJob(ctx context.Context, jobID, leaseID string, now time.Time, publicKey []byte) error {
	return s.completeOne(ctx, now, JobResult{JobID: jobID, LeaseID: leaseID, Kind: JobKeygen, PublicKey: publicKey})
}

// CompleteSignJob records the signature. See JobQueue.
func (s *SQL) CompleteSignJob(ctx context.Context, jobID, leaseID string, now time.Time, r, sv []byte, recoveryID int) error {
	return s.completeOne(ctx, now, JobResult{JobID: jobID, LeaseID: leaseID, Kind: JobSign, R: r, S: sv, RecoveryID: recoveryID})
}

func (s *SQL) completeOne(ctx context.Context, now time.Time, r JobResult) error {
	errs, err := s.CompleteJobs(ctx, now, []JobResult{r})
	if err != nil {
		return err
	}
	return errs[0]
}

// FailJob records a failed attempt. See JobQueue.
func (s *SQL) FailJob(ctx context.Context, f JobFailure) (JobState, error) {
	p := f.Retry.WithDefaults()
	now := micros(f.Now)
	var state JobState
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		job, err := s.lockedLeasedJob(ctx, tx, f.JobID, f.LeaseID, now)
		if err != nil {
			return err
		}
		if f.Rejected && job.Kind == JobSign {
			state = JobFailed
			return s.lockedFailJobAs(ctx, tx, job, now, f.Reason, SignatureRejected)
		}
		if f.Retryable && job.Attempts < p.MaxAttempts {
			state = JobQueued
			_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = 'queued', lease_id = '', lease_expires_at = 0,
				available_at = ?, last_error = ?, updated_at = ? WHERE seq = ?`),
				micros(f.Now.Add(p.Delay(job.Attempts))), f.Reason, now, job.Seq)
			if err != nil {
				return fmt.Errorf("requeue job %s: %w", job.ID, err)
			}
			return nil
		}
		state = JobFailed
		reason := f.Reason
		if f.Retryable {
			reason = fmt.Sprintf("%s (gave up after %d attempts)", reason, job.Attempts)
		}
		return s.lockedFailJob(ctx, tx, job, now, reason)
	})
	if err != nil {
		return "", err
	}
	return state, nil
}

// lockedFailJob fails a job and its wallet (keygen) or signature (sign) with
// reason, in tx, whose caller holds the job's row.
func (s *SQL) lockedFailJob(ctx context.Context, tx *sqlx.Tx, job *Job, now int64, reason string) error {
	return s.lockedFailJobAs(ctx, tx, job, now, reason, SignatureFailed)
}

// lockedFailJobAs is lockedFailJob with the signature's final status.
func (s *SQL) lockedFailJobAs(ctx context.Context, tx *sqlx.Tx, job *Job, now int64, reason string, status SignatureStatus) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ? WHERE seq = ?`),
		reason, now, job.Seq)
	if err != nil {
		return fmt.Errorf("fail job %s: %w", job.ID, err)
	}
	switch job.Kind {
	case JobKeygen:
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE wallets SET status = ?, failure_reason = ?, updated_at = ?
			WHERE id = ? AND status = ?`), string(WalletFailed), reason, now, job.WalletID, string(WalletCreating))
	case JobSign:
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE signatures SET status = ?, failure_reason = ?, updated_at = ?
			WHERE id = ? AND status = ?`), string(status), reason, now, job.SignatureID, string(SignaturePending))
	}
	if err != nil {
		return fmt.Errorf("fail target of job %s: %w", job.ID, err)
	}
	return nil
}

// JobCounts counts open jobs. See JobQueue.
func (s *SQL) JobCounts(ctx context.Context, now time.Time) (JobCounts, error) {
	var rows []struct {
		State  string `db:"state"`
		Lapsed bool   `db:"lapsed"`
		N      int    `db:"n"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT state, (state = 'leased' AND lease_expires_at <= ?) AS lapsed,
		COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'leased') GROUP BY state, lapsed`), micros(now))
	if err != nil {
		return JobCounts{}, fmt.Errorf("count jobs: %w", err)
	}
	var c JobCounts
	for _, r := range rows {
		switch JobState(r.State) {
		case JobQueued:
			c.Queued += r.N
		case JobLeased:
			c.Leased += r.N
			if r.Lapsed {
				c.Lapsed += r.N
			}
		}
	}
	return c, nil
}

// GetJob returns one job by id, for operators and tests.
func (s *SQL) GetJob(ctx context.Context, id string) (*Job, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("select job %s: %w", id, err)
	}
	j := r.job()
	return &j, nil
}
