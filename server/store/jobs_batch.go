package store

import (
	"cmp"
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
	now := micros(c.Now)
	choose := s.claimQuery()
	var claimed []*ClaimedJob
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if s.db.Dialect == db.Postgres {
			if _, err := tx.ExecContext(ctx, claimPlanning); err != nil {
				return fmt.Errorf("plan the claim: %w", err)
			}
		}
		// Exhausted or closed jobs met on the way are failed and skipped;
		// the rounds bound how many one claim wades through.
		for range maxLapsedPerClaim {
			want := len(c.LeaseIDs) - len(claimed)
			var rows []targetRow
			// The jobs are chosen (and, on PostgreSQL, locked) from the jobs
			// table alone, then joined to their targets: joining first would
			// look up the target of every open job before the sort.
			if err := tx.SelectContext(ctx, &rows, tx.Rebind(choose), now, now, want); err != nil {
				return fmt.Errorf("select claimable jobs: %w", err)
			}
			slices.SortFunc(rows, func(a, b targetRow) int { return cmp.Compare(a.Seq, b.Seq) })
			got, err := s.lockedLeaseAll(ctx, tx, rows, c, c.LeaseIDs[len(claimed):], maxAttempts)
			if err != nil {
				return err
			}
			claimed = append(claimed, got...)
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

// claimQuery selects (and on PostgreSQL locks) up to ? claimable jobs,
// oldest first, with their targets; its arguments are now, now and the
// limit. On PostgreSQL it runs after claimPlanning, in the same
// transaction.
//
// The open jobs must be walked oldest first along the partial index
// jobs_open, stopping at the LIMIT. Planners would rather gather every
// claimable job and sort them all, which costs a claim the whole queue's
// length: SQLite's always, PostgreSQL's whenever its statistics of jobs
// are stale (a burst of new jobs, before autovacuum analyses the table).
// SQLite is told the index (INDEXED BY); PostgreSQL, which takes no such
// hint, is kept from sorting and from bitmap scans (claimPlanning), and
// picks the jobs in a CTE of their own, joined to their targets after.
func (s *SQL) claimQuery() string {
	if s.db.Dialect == db.Postgres {
		return `WITH picked AS MATERIALIZED (SELECT seq FROM jobs
			WHERE state IN ('queued', 'leased')
			  AND ((state = 'queued' AND available_at <= ?) OR (state = 'leased' AND lease_expires_at <= ?))
			ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED)
		` + strings.Replace(targetSelect, "FROM jobs j", "FROM picked p JOIN jobs j ON j.seq = p.seq", 1)
	}
	return targetSelect + ` WHERE j.seq IN (SELECT seq FROM jobs INDEXED BY jobs_open
		WHERE state IN ('queued', 'leased')
		  AND ((state = 'queued' AND available_at <= ?) OR (state = 'leased' AND lease_expires_at <= ?))
		ORDER BY seq LIMIT ?) ORDER BY j.seq`
}

// claimPlanning is what a PostgreSQL claim's transaction runs first.
const claimPlanning = `SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off`

// lockedLeaseAll leases the selected jobs that are still wanted, the k-th
// under leaseIDs[k], in tx: one UPDATE for all of them and one read of
// their signature requests. A job whose drivers kept dying on it fails
// instead, and a job whose target was finished another way is closed;
// neither is returned.
func (s *SQL) lockedLeaseAll(ctx context.Context, tx *sqlx.Tx, rows []targetRow, c Claim, leaseIDs []string, maxAttempts int) ([]*ClaimedJob, error) {
	now := micros(c.Now)
	var lease []*targetRow
	for i := range rows {
		r := &rows[i]
		job := r.job()
		switch {
		case job.State == JobLeased && job.Attempts >= maxAttempts:
			// Its drivers keep dying on it: stop feeding it to them.
			reason := fmt.Sprintf("HSM job abandoned: its lease lapsed on each of %d attempts (last held by driver %s)", job.Attempts, job.LeasedBy)
			if err := s.lockedFailJob(ctx, tx, &job, now, reason); err != nil {
				return nil, err
			}
		case !r.open():
			_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = 'failed', last_error = ?, updated_at = ? WHERE seq = ?`),
				"closed: its wallet or signature was already finished", now, job.Seq)
			if err != nil {
				return nil, fmt.Errorf("close job %s: %w", job.ID, err)
			}
		default:
			lease = append(lease, r)
		}
	}
	if len(lease) == 0 {
		return nil, nil
	}
	expires := micros(c.Now.Add(c.LeaseFor))
	seqs, ids := make([]int64, len(lease)), leaseIDs[:len(lease)]
	for k, r := range lease {
		seqs[k] = r.Seq
	}
	var err error
	if s.db.Dialect == db.Postgres {
		// Each job gets its own lease id, paired by position.
		_, err = tx.ExecContext(ctx, `UPDATE jobs j SET state = 'leased', attempts = j.attempts + 1,
			lease_id = l.lease_id, leased_by = $3, leased_at = $4, lease_expires_at = $5, updated_at = $4
			FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS TEXT[])) AS l (seq, lease_id) WHERE j.seq = l.seq`,
			seqs, ids, c.Driver, now, expires)
	} else {
		// Each job gets its own lease id: CASE seq WHEN ? THEN ? ... END.
		var cases strings.Builder
		args := make([]any, 0, 3*len(lease)+4)
		for k := range lease {
			cases.WriteString(" WHEN ? THEN ?")
			args = append(args, seqs[k], ids[k])
		}
		args = append(args, c.Driver, now, expires, now)
		for _, seq := range seqs {
			args = append(args, seq)
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = 'leased', attempts = attempts + 1,
			lease_id = CASE seq`+cases.String()+` END, leased_by = ?, leased_at = ?, lease_expires_at = ?, updated_at = ?
			WHERE seq IN (?`+strings.Repeat(", ?", len(lease)-1)+`)`, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("lease %d jobs: %w", len(lease), err)
	}
	// The driver checks a sign request itself (payload, signed request):
	// it gets the whole signature row.
	sigs, err := s.signaturesByID(ctx, tx, lease)
	if err != nil {
		return nil, err
	}
	out := make([]*ClaimedJob, len(lease))
	for k, r := range lease {
		cj := r.claimed()
		if cj.Kind == JobSign {
			if cj.Signature = sigs[cj.SignatureID]; cj.Signature == nil {
				return nil, fmt.Errorf("job %s: %w: signature %s", cj.ID, ErrNotFound, cj.SignatureID)
			}
		}
		cj.Released = cj.State == JobLeased
		cj.State, cj.Attempts, cj.LeaseID, cj.LeasedBy = JobLeased, cj.Attempts+1, leaseIDs[k], c.Driver
		cj.LeasedAt, cj.LeaseExpiresAt, cj.UpdatedAt = fromMicros(now), fromMicros(expires), fromMicros(now)
		out[k] = cj
	}
	return out, nil
}

// signaturesByID reads the signature requests of the sign jobs among
// rows, in one query, keyed by id.
func (s *SQL) signaturesByID(ctx context.Context, tx *sqlx.Tx, rows []*targetRow) (map[string]*Signature, error) {
	var ids []string
	for _, r := range rows {
		if JobKind(r.Kind) == JobSign && r.SignatureID.Valid {
			ids = append(ids, r.SignatureID.String)
		}
	}
	out := make(map[string]*Signature, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var sigs []signatureRow
	in, args := s.idIn("id", ids)
	err := tx.SelectContext(ctx, &sigs, tx.Rebind(`SELECT `+signatureColumns+` FROM signatures WHERE `+in), args...)
	if err != nil {
		return nil, fmt.Errorf("select signatures: %w", err)
	}
	for i := range sigs {
		sg := sigs[i].signature()
		out[sg.ID] = sg
	}
	return out, nil
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
	ids := make([]string, len(leases))
	for i, l := range leases {
		ids[i] = l.JobID
	}
	var rows []targetRow
	in, args := s.idIn("j.id", ids)
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(targetSelect+` WHERE `+in), args...); err != nil {
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
//
// The jobs are read and locked in one query, and the signatures and jobs
// of the sign results are updated with one statement each; keygen results
// (rare) go one by one. A job reported twice in one batch under its lease
// keeps the first result; the second is refused with ErrStateConflict.
//
// On PostgreSQL, a batch of sign results (the steady state of an HSM
// queue) is first recorded with one statement: see completeSignsAtOnce.
func (s *SQL) CompleteJobs(ctx context.Context, now time.Time, results []JobResult) ([]error, error) {
	if s.db.Dialect == db.Postgres {
		return s.completeSignsAtOnce(ctx, now, results)
	}
	return s.completeJobs(ctx, now, results)
}

// completeJobs records results in one transaction that reads and locks
// their jobs first.
func (s *SQL) completeJobs(ctx context.Context, now time.Time, results []JobResult) ([]error, error) {
	errs := make([]error, len(results))
	at := micros(now)
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		clear(errs)
		var valid []int
		for i := range results {
			if errs[i] = results[i].validate(); errs[i] == nil {
				valid = append(valid, i)
			}
		}
		jobs, err := s.lockedJobsByID(ctx, tx, results, valid)
		if err != nil {
			return err
		}
		var signs []int
		seen, signing := map[string]bool{}, map[string]bool{}
		for _, i := range valid {
			r := &results[i]
			job, err := leasedForResult(jobs[r.JobID], r, at)
			if err != nil {
				errs[i] = err
				continue
			}
			if seen[r.JobID] {
				errs[i] = fmt.Errorf("%w: job %s reported twice in one batch", ErrStateConflict, r.JobID)
				continue
			}
			seen[r.JobID] = true
			if r.Kind == JobSign {
				if signing[job.SignatureID] {
					errs[i] = fmt.Errorf("%w: job %s: signature %s has another result in this batch", ErrStateConflict, r.JobID, job.SignatureID)
					continue
				}
				signing[job.SignatureID] = true
				signs = append(signs, i)
				continue
			}
			err = s.lockedApply(ctx, tx, job, r, at)
			if errors.Is(err, ErrStateConflict) {
				errs[i] = err // this result's own; the others go on
			} else if err != nil {
				return err
			}
		}
		return s.lockedApplySigns(ctx, tx, jobs, results, signs, errs, at)
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// completeSignsAtOnce records the sign results of a batch whose lease
// checks pass with one PostgreSQL statement, atomic by itself, in one round
// trip: it locks the jobs still under the results' leases (held by the
// reporting driver, not lapsed), records each signature that is still
// pending, and closes those jobs: done, or failed when the signature was
// finished another way. What it leaves untouched (keygen results, a lease
// that no longer holds, a job or signature twice in the batch) then goes
// through completeJobs, which names each refusal. The outcomes are those
// completeJobs would give for the whole batch, but in two transactions: if
// the second fails, what the statement recorded stays recorded, and the
// results the second carried fail each with its error. Where completeJobs
// costs five round trips per batch, a steady HSM queue costs one.
func (s *SQL) completeSignsAtOnce(ctx context.Context, now time.Time, results []JobResult) ([]error, error) {
	errs := make([]error, len(results))
	at := micros(now)
	// quick: the sign results tried at once; a job's second result in
	// the batch is left to completeJobs.
	var quick []int
	inQuick := make([]bool, len(results))
	seen := make(map[string]bool, len(results))
	for i := range results {
		r := &results[i]
		if r.Kind == JobSign && r.validate() == nil && !seen[r.JobID] {
			quick, inQuick[i] = append(quick, i), true
		}
		seen[r.JobID] = true
	}
	done := make(map[string]closedJob, len(quick))
	if len(quick) > 0 {
		// One array per column: one statement text whatever the batch's
		// size, so each connection parses it once and PostgreSQL can keep
		// a generic plan, where a VALUES list per size was planned anew
		// nearly every time.
		var in signInput
		for _, i := range quick {
			r := &results[i]
			in.jobs, in.leases, in.drivers = append(in.jobs, r.JobID), append(in.leases, r.LeaseID), append(in.drivers, r.Driver)
			in.r, in.s, in.v = append(in.r, r.R), append(in.s, r.S), append(in.v, int32(r.RecoveryID))
		}
		args := []any{in.jobs, in.leases, in.drivers, in.r, in.s, in.v, at, at, at}
		var rows []closedJob
		if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(completeSignsQuery), args...); err != nil {
			return nil, fmt.Errorf("record %d signatures: %w", len(quick), err)
		}
		for _, c := range rows {
			done[c.ID] = c
		}
	}
	// rest: what the statement left, in the batch's order (completeJobs
	// keeps the first of a job's results).
	var rest []int
	for i := range results {
		r := &results[i]
		c, ok := done[r.JobID]
		if !inQuick[i] || !ok {
			rest = append(rest, i)
			continue
		}
		r.Target = c.SignatureID
		if JobState(c.State) != JobDone {
			errs[i] = fmt.Errorf("%w: job %s: its wallet or signature was already finished", ErrStateConflict, r.JobID)
		}
	}
	if len(rest) == 0 {
		return errs, nil
	}
	sub := make([]JobResult, len(rest))
	for k, i := range rest {
		sub[k] = results[i]
	}
	subErrs, err := s.completeJobs(ctx, now, sub)
	if err != nil {
		if len(rest) == len(results) {
			return nil, err // the one statement recorded nothing
		}
		// What the statement recorded is committed; only the results this
		// transaction carried failed, each with its error.
		for _, i := range rest {
			errs[i] = fmt.Errorf("complete job %s: %w", results[i].JobID, err)
		}
		return errs, nil
	}
	for k, i := range rest {
		results[i].Target, errs[i] = sub[k].Target, subErrs[k]
	}
	return errs, nil
}

// resultDiscarded is the last error of a job whose result came after its
// wallet or signature was finished another way.
const resultDiscarded = "result discarded: its wallet or signature was already finished"

// idIn is the condition "column is one of ids" and its arguments: on
// PostgreSQL one array (one statement text whatever the count, so it is
// parsed once per connection and may keep a generic plan), on SQLite a
// list of placeholders.
func (s *SQL) idIn(column string, ids []string) (string, []any) {
	if s.db.Dialect == db.Postgres {
		return column + ` = ANY(CAST(? AS TEXT[]))`, []any{ids}
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return column + ` IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`, args
}

// signInput holds completeSignsAtOnce's results, one slice per column.
type signInput struct {
	jobs, leases, drivers []string
	r, s                  [][]byte
	v                     []int32
}

// completeSignsQuery is completeSignsAtOnce's statement. Its arguments are
// the columns of the results (job ids, lease ids, drivers, r, s, recovery
// ids: arrays of equal length) and now, three times. held leaves out the
// jobs that share a signature with another in the batch: signed could only
// record one of their results.
const completeSignsQuery = `WITH input (job_id, lease_id, driver, r, s, v) AS (
		SELECT * FROM unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS BYTEA[]), CAST(? AS BYTEA[]), CAST(? AS INTEGER[]))),
	held AS (
		SELECT j.seq, j.id, j.signature_id, i.r, i.s, i.v FROM jobs j JOIN input i ON i.job_id = j.id
		WHERE j.kind = '` + string(JobSign) + `' AND j.state = '` + string(JobLeased) + `' AND j.lease_id = i.lease_id AND j.lease_expires_at > ?
		  AND (i.driver = '' OR j.leased_by = i.driver) AND j.signature_id IS NOT NULL
		FOR UPDATE OF j),
	single AS (
		SELECT * FROM held h WHERE NOT EXISTS (SELECT 1 FROM held o WHERE o.signature_id = h.signature_id AND o.seq <> h.seq)),
	signed AS (
		UPDATE signatures sg SET sig_r = h.r, sig_s = h.s, recovery_id = h.v, status = '` + string(SignatureSigned) + `', updated_at = ?
		FROM single h WHERE sg.id = h.signature_id AND sg.status = '` + string(SignaturePending) + `'
		RETURNING sg.id)
	UPDATE jobs j SET
		state = CASE WHEN h.signature_id IN (SELECT id FROM signed) THEN '` + string(JobDone) + `' ELSE '` + string(JobFailed) + `' END,
		last_error = CASE WHEN h.signature_id IN (SELECT id FROM signed) THEN '' ELSE '` + resultDiscarded + `' END,
		updated_at = ?
	FROM single h WHERE j.seq = h.seq
	RETURNING j.id, j.state, j.signature_id`

// closedJob is a job completeSignsAtOnce closed.
type closedJob struct {
	ID          string `db:"id"`
	State       string `db:"state"`
	SignatureID string `db:"signature_id"`
}

// lockedJobsByID reads and (on PostgreSQL) locks the jobs of
// results[valid], keyed by id.
func (s *SQL) lockedJobsByID(ctx context.Context, tx *sqlx.Tx, results []JobResult, valid []int) (map[string]*Job, error) {
	out := make(map[string]*Job, len(valid))
	if len(valid) == 0 {
		return out, nil
	}
	ids := make([]any, len(valid))
	for k, i := range valid {
		ids[k] = results[i].JobID
	}
	var rows []jobRow
	err := tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT `+jobColumns+` FROM jobs WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`+s.forUpdate(false)), ids...)
	if err != nil {
		return nil, fmt.Errorf("select jobs: %w", err)
	}
	for i := range rows {
		job := rows[i].job()
		out[job.ID] = &job
	}
	return out, nil
}

// leasedForResult checks that job (nil: not found) is under the lease r
// was made under, held by r's driver, and of r's kind.
func leasedForResult(job *Job, r *JobResult, now int64) (*Job, error) {
	if job == nil {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, r.JobID)
	}
	if err := leaseCurrent(job, r.LeaseID, now); err != nil {
		return nil, err
	}
	if r.Driver != "" && job.LeasedBy != r.Driver {
		return nil, fmt.Errorf("%w: job %s is leased to another driver", ErrStateConflict, r.JobID)
	}
	if job.Kind != r.Kind {
		return nil, fmt.Errorf("%w: job %s is a %s job, not %s", ErrStateConflict, r.JobID, job.Kind, r.Kind)
	}
	return job, nil
}

// lockedApplySigns records the sign results results[signs] (each for a
// different signature) with one UPDATE of their signatures and one of
// their jobs, in tx. A signature finished another way meanwhile leaves its
// job failed and its result refused with ErrStateConflict in errs.
func (s *SQL) lockedApplySigns(ctx context.Context, tx *sqlx.Tx, jobs map[string]*Job, results []JobResult, signs []int, errs []error, now int64) error {
	if len(signs) == 0 {
		return nil
	}
	blob := "?"
	if s.db.Dialect == db.Postgres {
		blob = "CAST(? AS BYTEA)" // a CASE's parameters would otherwise be text
	}
	var rCase, sCase, vCase strings.Builder
	var rArgs, sArgs, vArgs, inArgs []any
	for _, i := range signs {
		r := &results[i]
		id := jobs[r.JobID].SignatureID
		rCase.WriteString(" WHEN ? THEN " + blob)
		sCase.WriteString(" WHEN ? THEN " + blob)
		vCase.WriteString(" WHEN ? THEN CAST(? AS INTEGER)")
		rArgs, sArgs, vArgs = append(rArgs, id, r.R), append(sArgs, id, r.S), append(vArgs, id, r.RecoveryID)
		inArgs = append(inArgs, id)
	}
	args := append(append(append(append(rArgs, sArgs...), vArgs...), string(SignatureSigned), now, string(SignaturePending)), inArgs...)
	var recorded []string
	err := tx.SelectContext(ctx, &recorded, tx.Rebind(`UPDATE signatures SET sig_r = CASE id`+rCase.String()+` END,
		sig_s = CASE id`+sCase.String()+` END, recovery_id = CASE id`+vCase.String()+` END, status = ?, updated_at = ?
		WHERE status = ? AND id IN (?`+strings.Repeat(", ?", len(inArgs)-1)+`) RETURNING id`), args...)
	if err != nil {
		return fmt.Errorf("record %d signatures: %w", len(signs), err)
	}
	done := make(map[string]bool, len(recorded))
	for _, id := range recorded {
		done[id] = true
	}
	// Then every job is closed: done, or failed when its signature was
	// finished another way (its result is discarded).
	var stateCase, errorCase strings.Builder
	var stateArgs, errorArgs, seqs []any
	for _, i := range signs {
		r := &results[i]
		job := jobs[r.JobID]
		r.Target = job.SignatureID
		state, lastError := JobDone, ""
		if !done[job.SignatureID] {
			state, lastError = JobFailed, resultDiscarded
			errs[i] = fmt.Errorf("%w: job %s: its wallet or signature was already finished", ErrStateConflict, r.JobID)
		}
		stateCase.WriteString(" WHEN ? THEN ?")
		errorCase.WriteString(" WHEN ? THEN ?")
		stateArgs, errorArgs = append(stateArgs, job.Seq, string(state)), append(errorArgs, job.Seq, lastError)
		seqs = append(seqs, job.Seq)
	}
	args = append(append(append(stateArgs, errorArgs...), now), seqs...)
	_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE jobs SET state = CASE seq`+stateCase.String()+` END,
		last_error = CASE seq`+errorCase.String()+` END, updated_at = ?
		WHERE seq IN (?`+strings.Repeat(", ?", len(seqs)-1)+`)`), args...)
	if err != nil {
		return fmt.Errorf("close %d jobs: %w", len(seqs), err)
	}
	return nil
}

// lockedApply applies one result to its job's target (job, under the
// result's lease: leasedForResult) and closes the job, in tx.
// ErrStateConflict concerns this result alone; any other error aborts the
// transaction.
func (s *SQL) lockedApply(ctx context.Context, tx *sqlx.Tx, job *Job, r *JobResult, now int64) error {
	var err error
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
		state, lastError = JobFailed, resultDiscarded
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
