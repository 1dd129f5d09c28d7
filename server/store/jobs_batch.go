package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

// The HSM queue's hot path: a claim leases several jobs in one
// transaction, reading each job's target (wallet, signature) in the same
// query, and a batch of results is recorded in one transaction. Each
// transaction is a commit the database must make durable, so this is what
// bounds how many HSM signatures per second the coordinator can record.

// JobResult is a checked result of a job, for CompleteJobs.
type JobResult struct {
	JobID, LeaseID string
	// Driver, when set, is the reporting driver: the lease must be held by
	// it.
	Driver string
	Kind   JobKind
	// PublicKey is a keygen job's compressed public key (33 bytes).
	PublicKey []byte
	// R, S (S low) and RecoveryID are a sign job's verified signature.
	R, S       []byte
	RecoveryID int
	// Target is set by CompleteJobs when the result is recorded: the id of
	// the signature (sign jobs) or wallet (keygen jobs) it finished, for
	// waking callers waiting on it.
	Target string
}

func (r *JobResult) validate() error {
	switch r.Kind {
	case JobKeygen:
		if len(r.PublicKey) != 33 {
			return fmt.Errorf("complete job %s: public key is %d bytes, want 33", r.JobID, len(r.PublicKey))
		}
	case JobSign:
		if len(r.R) != 32 || len(r.S) != 32 || r.RecoveryID < 0 || r.RecoveryID > 3 {
			return fmt.Errorf("complete job %s: malformed signature", r.JobID)
		}
	default:
		return fmt.Errorf("complete job %s: unknown kind %q", r.JobID, r.Kind)
	}
	return nil
}

// targetRow is a job with what its target holds: the wallet's status and
// key, the signature's status and digest (NULL for a keygen job).
type targetRow struct {
	jobRow
	WalletStatus    string         `db:"wallet_status"`
	WalletPublicKey []byte         `db:"wallet_public_key"`
	SigStatus       sql.NullString `db:"sig_status"`
	SigDigest       []byte         `db:"sig_digest"`
}

// open reports whether the job's target still waits for it.
func (r *targetRow) open() bool {
	switch JobKind(r.Kind) {
	case JobKeygen:
		return WalletStatus(r.WalletStatus) == WalletCreating
	case JobSign:
		return SignatureStatus(r.SigStatus.String) == SignaturePending && WalletStatus(r.WalletStatus) == WalletActive
	}
	return false
}

func (r *targetRow) claimed() *ClaimedJob {
	cj := &ClaimedJob{Job: r.job()}
	if cj.Kind == JobSign {
		cj.Digest, cj.PublicKey = r.SigDigest, r.WalletPublicKey
	}
	return cj
}

// targetSelect selects jobs (aliased j) with their targets.
var targetSelect = `SELECT j.` + strings.Join(strings.Fields(strings.ReplaceAll(jobColumns, ",", " ")), ", j.") + `,
	w.status AS wallet_status, w.public_key AS wallet_public_key, sg.status AS sig_status, sg.digest AS sig_digest
	FROM jobs j JOIN wallets w ON w.id = j.wallet_id LEFT JOIN signatures sg ON sg.id = j.signature_id`

// ClaimJobs leases up to len(c.LeaseIDs) jobs. See JobQueue.
//
// On PostgreSQL the candidate rows are locked with FOR UPDATE SKIP LOCKED,
// so concurrent claimers (on one coordinator or several replicas) each
// lock different rows instead of queueing on the same ones. On SQLite the
// transaction holds the database's write lock from its start.
func (s *SQL) ClaimJobs(ctx context.Context, c Claim) ([]*ClaimedJob, error) {
	if c.Driver == "" || len(c.LeaseIDs) == 0 || c.LeaseFor <= 0 || slices.Contains(c.LeaseIDs, "") {
		return nil, errors.New("store: claim needs a driver, lease ids and a lease length")
	}
	maxAttempts := c.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	lock := ""
	if s.db.Dialect == db.Postgres {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	now := micros(c.Now)
	var claimed []*ClaimedJob
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		// Exhausted or closed jobs met on the way are failed and skipped;
		// the rounds bound how many one claim wades through.
		for range maxLapsedPerClaim {
			want := len(c.LeaseIDs) - len(claimed)
			var rows []targetRow
			// The jobs are chosen (and, on PostgreSQL, locked) from the jobs
			// table alone, then joined to their targets: joining first would
			// look up the target of every open job before the sort.
			err := tx.SelectContext(ctx, &rows, tx.Rebind(targetSelect+` WHERE j.seq IN (SELECT seq FROM jobs
				WHERE state IN ('queued', 'leased')
				  AND ((state = 'queued' AND available_at <= ?) OR (state = 'leased' AND lease_expires_at <= ?))
				ORDER BY seq LIMIT ?`+lock+`) ORDER BY j.seq`), now, now, want)
			if err != nil {
				return fmt.Errorf("select claimable jobs: %w", err)
			}
			for i := range rows {
				cj, err := s.lockedLease(ctx, tx, &rows[i], c, c.LeaseIDs[len(claimed)], maxAttempts)
				if err != nil {
					return err
				}
				if cj != nil {
					claimed = append(claimed, cj)
				}
			}
			if len(rows) < want || len(claimed) == len(c.LeaseIDs) {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// lockedLease leases one selected job under leaseID, in tx. A job whose
// drivers kept dying on it fails instead, and a job whose target was
// finished another way is closed; both return nil.
func (s *SQL) lockedLease(ctx context.Context, tx *sqlx.Tx, r *targetRow, c Claim, leaseID string, maxAttempts int) (*ClaimedJob, error) {
	now := micros(c.Now)
	job := r.job()
	released := job.State == JobLeased
	if released && job.Attempts >= maxAttempts {
		// Its drivers keep dying on it: stop feeding it to them.
		reason := fmt.Sprintf("HSM job abandoned: its lease lapsed on each of %d attempts (last held by driver %s)", job.Attempts, job.LeasedBy)
		return nil, s.lockedFailJob(ctx, tx, &job, now, reason)
	}
	if !r.open() {
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ? WHERE seq = ?`),
			"closed: its wallet or signature was already finished", now, job.Seq)
		if err != nil {
			return nil, fmt.Errorf("close job %s: %w", job.ID, err)
		}
		return nil, nil
	}
	expires := micros(c.Now.Add(c.LeaseFor))
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = 'leased', attempts = attempts + 1,
		lease_id = ?, leased_by = ?, leased_at = ?, lease_expires_at = ?, updated_at = ? WHERE seq = ?`),
		leaseID, c.Driver, now, expires, now, job.Seq)
	if err != nil {
		return nil, fmt.Errorf("lease job %s: %w", job.ID, err)
	}
	cj := r.claimed()
	if cj.Kind == JobSign {
		// The driver checks the request itself (payload, signed request):
		// it gets the whole signature row.
		if cj.Signature, err = s.getSignature(ctx, tx, job.SignatureID); err != nil {
			return nil, fmt.Errorf("job %s: %w", job.ID, err)
		}
	}
	cj.State, cj.Attempts, cj.LeaseID, cj.LeasedBy = JobLeased, job.Attempts+1, leaseID, c.Driver
	cj.LeasedAt, cj.LeaseExpiresAt, cj.UpdatedAt = fromMicros(now), fromMicros(expires), fromMicros(now)
	cj.Released = released
	return cj, nil
}

// LeasedJob returns a job under a current lease. See JobQueue.
func (s *SQL) LeasedJob(ctx context.Context, jobID, leaseID string, now time.Time) (*ClaimedJob, error) {
	jobs, errs, err := s.LeasedJobs(ctx, []JobLease{{JobID: jobID, LeaseID: leaseID}}, now)
	if err != nil {
		return nil, err
	}
	return jobs[0], errs[0]
}

// JobLease names a job and the lease a driver holds on it.
type JobLease struct{ JobID, LeaseID string }

// LeasedJobs returns jobs under current leases, read in one query: the
// i-th job, or the i-th error (ErrNotFound, ErrStateConflict) when it is
// not under that lease. See JobQueue.
//
// It reads without a transaction: what a result is checked against (the
// digest, the wallet's key) never changes once the job exists, and the
// lease is checked again, under lock, when the result is recorded.
func (s *SQL) LeasedJobs(ctx context.Context, leases []JobLease, now time.Time) ([]*ClaimedJob, []error, error) {
	if len(leases) == 0 {
		return nil, nil, nil
	}
	ids := make([]any, len(leases))
	for i, l := range leases {
		ids[i] = l.JobID
	}
	var rows []targetRow
	query := targetSelect + ` WHERE j.id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(query), ids...); err != nil {
		return nil, nil, fmt.Errorf("select jobs: %w", err)
	}
	byID := make(map[string]*targetRow, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	jobs, errs := make([]*ClaimedJob, len(leases)), make([]error, len(leases))
	for i, l := range leases {
		r, ok := byID[l.JobID]
		if !ok {
			errs[i] = fmt.Errorf("%w: job %s", ErrNotFound, l.JobID)
			continue
		}
		cj := r.claimed()
		if err := leaseCurrent(&cj.Job, l.LeaseID, micros(now)); err != nil {
			errs[i] = err
			continue
		}
		jobs[i] = cj
	}
	return jobs, errs, nil
}

// CompleteJobs records checked results. See JobQueue.
func (s *SQL) CompleteJobs(ctx context.Context, now time.Time, results []JobResult) ([]error, error) {
	errs := make([]error, len(results))
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		for i := range results {
			errs[i] = results[i].validate()
			if errs[i] != nil {
				continue
			}
			err := s.lockedComplete(ctx, tx, &results[i], micros(now))
			if errors.Is(err, ErrStateConflict) || errors.Is(err, ErrNotFound) {
				errs[i] = err // this result's own; the others go on
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// lockedComplete checks one result's lease, applies it to the job's target
// and closes the job, in tx. ErrStateConflict and ErrNotFound concern this
// result alone; any other error aborts the transaction.
func (s *SQL) lockedComplete(ctx context.Context, tx *sqlx.Tx, r *JobResult, now int64) error {
	job, err := s.lockedLeasedJob(ctx, tx, r.JobID, r.LeaseID, now)
	if err != nil {
		return err
	}
	if r.Driver != "" && job.LeasedBy != r.Driver {
		return fmt.Errorf("%w: job %s is leased to another driver", ErrStateConflict, r.JobID)
	}
	if job.Kind != r.Kind {
		return fmt.Errorf("%w: job %s is a %s job, not %s", ErrStateConflict, r.JobID, job.Kind, r.Kind)
	}
	r.Target = job.WalletID
	if job.SignatureID != "" {
		r.Target = job.SignatureID
	}
	var res sql.Result
	switch r.Kind {
	case JobKeygen:
		res, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE wallets SET status = ?, public_key = ?, updated_at = ?
			WHERE id = ? AND status = ?`),
			string(WalletActive), r.PublicKey, now, job.WalletID, string(WalletCreating))
	case JobSign:
		res, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE signatures SET status = ?, sig_r = ?, sig_s = ?, recovery_id = ?,
			updated_at = ? WHERE id = ? AND status = ?`),
			string(SignatureSigned), r.R, r.S, r.RecoveryID, now, job.SignatureID, string(SignaturePending))
	}
	if err != nil {
		return fmt.Errorf("record result of job %s: %w", r.JobID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("record result of job %s: %w", r.JobID, err)
	}
	state, lastError := JobDone, ""
	if n == 0 {
		// The wallet or signature was finished another way meanwhile; the
		// job is over either way.
		state, lastError = JobFailed, "result discarded: its wallet or signature was already finished"
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = ?, last_error = ?, updated_at = ? WHERE seq = ?`),
		string(state), lastError, now, job.Seq)
	if err != nil {
		return fmt.Errorf("close job %s: %w", r.JobID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: job %s: its wallet or signature was already finished", ErrStateConflict, r.JobID)
	}
	return nil
}
