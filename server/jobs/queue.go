// Package jobs is the coordinator's HSM job queue as drivers see it: the
// store's leases plus the clock, the lease length, the retry policy and the
// long poll. A claim that finds nothing waits for a NotifyWork (the wallet
// API calls it after inserting a job) or for the periodic re-check, which
// catches what no notification announces: jobs inserted by another
// coordinator replica, leases that lapse, backoffs that end.
package jobs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// Defaults.
const (
	DefaultLease = 30 * time.Second
	// DefaultMaxLease caps a lease's whole life, renewals included. An HSM
	// operation takes milliseconds; a driver still renewing after minutes
	// is stuck or hostile, and must not hold a signature pending for ever.
	DefaultMaxLease = 5 * time.Minute
	DefaultRecheck  = 500 * time.Millisecond
)

// Config tunes a Queue. Zero fields take the defaults.
type Config struct {
	// Lease is how long a claim or a renewal holds a job (default 30 s).
	// A driver that dies is noticed within this time.
	Lease time.Duration
	// MaxLease is the longest a driver may hold a job from its claim,
	// renewals included (default 5 min, and at least Lease). Renewals never
	// extend a lease past it; the lease then lapses and the job is claimable
	// again, as an attempt that counts towards Retry.MaxAttempts.
	MaxLease time.Duration
	// Retry bounds and spaces the attempts of a failing job.
	Retry store.RetryPolicy
	// Recheck is how often a waiting claim looks at the database without
	// a notification (default 500 ms).
	Recheck time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Settled, when set, is told the id of the wallet or signature a job
	// report changed, once that change is durable.
	Settled func(ids ...string)
}

// Queue serves job claims and reports. It implements api.Notifier.
type Queue struct {
	store   store.JobQueue
	lease   time.Duration
	maxLife time.Duration
	retry   store.RetryPolicy
	recheck time.Duration
	now     func() time.Time
	settled func(ids ...string)
	held    held

	mu     sync.Mutex
	wake   chan struct{} // closed and replaced by NotifyWork
	closed chan struct{}
	once   sync.Once
}

// New returns a queue over s.
func New(s store.JobQueue, cfg Config) *Queue {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.MaxLease <= 0 {
		cfg.MaxLease = DefaultMaxLease
	}
	cfg.MaxLease = max(cfg.MaxLease, cfg.Lease)
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultRecheck
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Queue{
		store: s, lease: cfg.Lease, maxLife: cfg.MaxLease, retry: cfg.Retry.WithDefaults(), recheck: cfg.Recheck, now: cfg.Now, settled: cfg.Settled,
		wake: make(chan struct{}), closed: make(chan struct{}),
	}
}

// Lease is the lease length.
func (q *Queue) Lease() time.Duration { return q.lease }

// NotifyWork wakes every waiting claim: new work was inserted.
func (q *Queue) NotifyWork() {
	q.mu.Lock()
	close(q.wake)
	q.wake = make(chan struct{})
	q.mu.Unlock()
}

// Close ends every waiting claim with no job, so that a shutting-down
// server is not held up by long polls. Later claims do not wait.
func (q *Queue) Close() {
	q.once.Do(func() { close(q.closed) })
}

func (q *Queue) wakeChan() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wake
}

// MaxClaim bounds how many jobs one claim leases.
const MaxClaim = 64

// Claim leases up to n jobs to driver (at least one, at most MaxClaim),
// waiting up to wait for the first. It returns none when none came in
// time.
func (q *Queue) Claim(ctx context.Context, driver string, wait time.Duration, n int) ([]*store.ClaimedJob, error) {
	n = min(MaxClaim, max(1, n))
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(q.recheck)
	defer tick.Stop()
	for {
		// Take the wake channel before looking, so a notification that
		// lands between the look and the wait is not missed.
		wake := q.wakeChan()
		leases := make([]string, n)
		for i := range leases {
			leases[i] = ids.New(ids.Lease)
		}
		claimed, err := q.store.ClaimJobs(ctx, store.Claim{
			Driver: driver, LeaseIDs: leases, Now: q.now(), LeaseFor: q.lease,
			MaxAttempts: q.retry.MaxAttempts,
		})
		if err != nil {
			return nil, err
		}
		if len(claimed) > 0 {
			if ctx.Err() != nil {
				// The driver hung up while we claimed: give the jobs back now
				// rather than let them sit out a whole lease.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				errs := []error{ctx.Err()}
				for _, cj := range claimed {
					errs = append(errs, q.store.ReleaseJob(rctx, cj.ID, cj.LeaseID))
				}
				return nil, errors.Join(errs...)
			}
			q.held.add(claimed, q.now())
			return claimed, nil
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-deadline.C:
			return nil, nil
		case <-q.closed:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// MaxLease is the cap on a lease's life.
func (q *Queue) MaxLease() time.Duration { return q.maxLife }

// Renew extends driver's lease by the lease length, within the cap.
func (q *Queue) Renew(ctx context.Context, jobID, leaseID, driver string) (time.Time, error) {
	return q.store.RenewLease(ctx, store.Renewal{
		JobID: jobID, LeaseID: leaseID, Driver: driver, Now: q.now(), LeaseFor: q.lease, MaxLife: q.maxLife,
	})
}

// Leased returns a job under a current lease.
func (q *Queue) Leased(ctx context.Context, jobID, leaseID string) (*store.ClaimedJob, error) {
	return q.store.LeasedJob(ctx, jobID, leaseID, q.now())
}

// LeasedMany returns jobs under current leases, in one read: the i-th
// job, or the i-th error when it is not under that lease.
// Jobs this replica claimed and still holds in memory are not read again
// (see held).
func (q *Queue) LeasedMany(ctx context.Context, leases []store.JobLease) ([]*store.ClaimedJob, []error, error) {
	now := q.now()
	jobs, errs := make([]*store.ClaimedJob, len(leases)), make([]error, len(leases))
	var missed []store.JobLease
	var at []int // missed[k] is leases[at[k]]
	for i, l := range leases {
		if cj, ok := q.held.get(l, now); ok {
			jobs[i] = cj
			continue
		}
		missed, at = append(missed, l), append(at, i)
	}
	if len(missed) == 0 {
		return jobs, errs, nil
	}
	read, readErrs, err := q.store.LeasedJobs(ctx, missed, now)
	if err != nil {
		return nil, nil, err
	}
	for k, i := range at {
		jobs[i], errs[i] = read[k], readErrs[k]
	}
	return jobs, errs, nil
}

// CompleteKeygen activates the job's wallet with pub.
func (q *Queue) CompleteKeygen(ctx context.Context, jobID, leaseID string, pub []byte) error {
	return q.settle(ctx, jobID, leaseID, func() error {
		return q.store.CompleteKeygenJob(ctx, jobID, leaseID, q.now(), pub)
	})
}

// CompleteSign records a verified signature.
func (q *Queue) CompleteSign(ctx context.Context, jobID, leaseID string, r, s []byte, recoveryID int) error {
	return q.settle(ctx, jobID, leaseID, func() error {
		return q.store.CompleteSignJob(ctx, jobID, leaseID, q.now(), r, s, recoveryID)
	})
}

// CompleteJobs records several checked results (in one transaction on
// SQLite; on PostgreSQL in one statement, plus one transaction for any
// results that statement leaves); the i-th error is results[i]'s own.
func (q *Queue) CompleteJobs(ctx context.Context, results []store.JobResult) ([]error, error) {
	for _, r := range results {
		q.held.forget(r.JobID)
	}
	errs, err := q.store.CompleteJobs(ctx, q.now(), results)
	if err != nil || q.settled == nil {
		return errs, err
	}
	var done []string
	for i, r := range results {
		if errs[i] == nil && r.Target != "" {
			done = append(done, r.Target)
		}
	}
	if len(done) > 0 {
		q.settled(done...)
	}
	return errs, nil
}

// Fail records a failed attempt and returns the job's new state.
func (q *Queue) Fail(ctx context.Context, jobID, leaseID, reason string, retryable bool) (store.JobState, error) {
	var state store.JobState
	err := q.settle(ctx, jobID, leaseID, func() error {
		var err error
		state, err = q.store.FailJob(ctx, store.JobFailure{
			JobID: jobID, LeaseID: leaseID, Now: q.now(), Reason: reason, Retryable: retryable, Retry: q.retry,
		})
		return err
	})
	return state, err
}

// settle runs apply, which changes the job's wallet or signature, then
// tells waiting callers.
func (q *Queue) settle(ctx context.Context, jobID, leaseID string, apply func() error) error {
	q.held.forget(jobID)
	var target string
	if q.settled != nil {
		if cj, err := q.store.LeasedJob(ctx, jobID, leaseID, q.now()); err == nil {
			target = cj.WalletID
			if cj.SignatureID != "" {
				target = cj.SignatureID
			}
		}
	}
	if err := apply(); err != nil {
		return err
	}
	if target != "" {
		q.settled(target)
	}
	return nil
}

// Reject records that the driver refused to sign: the signature request
// becomes REJECTED with reason and the job is not retried.
func (q *Queue) Reject(ctx context.Context, jobID, leaseID, reason string) (store.JobState, error) {
	var state store.JobState
	err := q.settle(ctx, jobID, leaseID, func() error {
		var err error
		state, err = q.store.FailJob(ctx, store.JobFailure{
			JobID: jobID, LeaseID: leaseID, Now: q.now(), Reason: reason, Rejected: true, Retry: q.retry,
		})
		return err
	})
	return state, err
}

// Counts returns the queue depth.
func (q *Queue) Counts(ctx context.Context) (store.JobCounts, error) {
	return q.store.JobCounts(ctx, q.now())
}
