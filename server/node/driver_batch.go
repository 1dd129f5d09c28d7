package node

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

// CompleteJobs checks every result as CompleteJob does, then records the
// accepted ones together (Queue.CompleteJobs): a driver that finishes jobs
// faster than one round trip each reports them together, and the database
// commits once for the lot.
func (d *DriverServer) CompleteJobs(ctx context.Context, req *connect.Request[driverv1.CompleteJobsRequest]) (*connect.Response[driverv1.CompleteJobsResponse], error) {
	driver, err := d.driver(ctx)
	if err != nil {
		return nil, err
	}
	items := req.Msg.GetResults()
	outcomes := make([]*driverv1.CompleteJobOutcome, len(items))
	var accepted []store.JobResult
	var at []int // accepted[k] is items[at[k]]
	// Every job is read in one query; each result is checked against its own.
	leases := make([]store.JobLease, len(items))
	for i, m := range items {
		leases[i] = store.JobLease{JobID: m.GetJobId(), LeaseID: m.GetLeaseId()}
	}
	jobs, lookupErrs, err := d.queue.LeasedMany(ctx, leases)
	if err != nil {
		return nil, d.toConnect(ctx, err)
	}
	seen := make(map[string]bool, len(items))
	for i, m := range items {
		outcomes[i] = &driverv1.CompleteJobOutcome{JobId: m.GetJobId()}
		if seen[m.GetJobId()] {
			outcomes[i].Outcome, outcomes[i].Error = driverv1.JobOutcome_JOB_OUTCOME_REJECTED, "job reported twice in one batch"
			continue
		}
		seen[m.GetJobId()] = true
		cj, err := d.heldBy(ctx, driver, m.GetJobId(), jobs[i], lookupErrs[i])
		if err != nil {
			if err := d.setOutcome(ctx, outcomes[i], err); err != nil {
				return nil, err
			}
			continue
		}
		res, err := d.check(ctx, driver, cj, m)
		if err != nil {
			if err := d.setOutcome(ctx, outcomes[i], err); err != nil {
				return nil, err
			}
			continue
		}
		accepted = append(accepted, *res)
		at = append(at, i)
	}
	if len(accepted) > 0 {
		errs, err := d.queue.CompleteJobs(ctx, accepted)
		if err != nil {
			return nil, d.toConnect(ctx, err)
		}
		for k, err := range errs {
			o := outcomes[at[k]]
			if err != nil {
				if err := d.setOutcome(ctx, o, d.toConnect(ctx, err)); err != nil {
					return nil, err
				}
				continue
			}
			o.Outcome = driverv1.JobOutcome_JOB_OUTCOME_RECORDED
			d.metrics.completed.WithLabelValues(driver, string(accepted[k].Kind)).Inc()
		}
	}
	return connect.NewResponse(&driverv1.CompleteJobsResponse{Outcomes: outcomes}), nil
}

// setOutcome turns the refusal of one result into its outcome. An error
// that concerns the whole call (the database, the context) is returned.
func (d *DriverServer) setOutcome(ctx context.Context, o *driverv1.CompleteJobOutcome, err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		err = d.toConnect(ctx, err)
		errors.As(err, &ce)
	}
	switch ce.Code() {
	case connect.CodeFailedPrecondition, connect.CodeNotFound, connect.CodePermissionDenied:
		o.Outcome = driverv1.JobOutcome_JOB_OUTCOME_LEASE_LOST
	case connect.CodeInvalidArgument:
		o.Outcome = driverv1.JobOutcome_JOB_OUTCOME_REJECTED
	default:
		return ce
	}
	o.Error = ce.Message()
	return nil
}
