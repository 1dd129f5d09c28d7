package driver

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
)

// reportLinger is how long a result waits for others to travel with it
// while the driver is still working on other jobs (less when the last of
// them is handed over sooner).
const reportLinger = 5 * time.Millisecond

// maxReport bounds the results of one CompleteJobs (the protocol allows 64).
const maxReport = 64

// reporter sends the results of a driver's workers to the coordinator. One
// CompleteJobs is in flight at a time, and it carries every result that
// finished while the previous one was on its way, and, while other jobs
// are still being worked on, those that finish within reportLinger: under
// load, results travel (and are committed) in batches, each costing the
// coordinator one transaction; a lone job's result goes at once.
type reporter struct {
	d      *Driver
	in     chan pendingResult
	linger time.Duration // reportLinger; tests lengthen it
	// single is set once the coordinator answered Unimplemented (an older
	// version): results then go one CompleteJob each.
	single atomic.Bool
}

type pendingResult struct {
	req  *driverv1.CompleteJobRequest
	done chan error
}

func newReporter(d *Driver) *reporter {
	return &reporter{d: d, in: make(chan pendingResult), linger: reportLinger}
}

// complete hands a result to the reporter and waits until the coordinator
// recorded it (nil) or refused it.
func (r *reporter) complete(ctx context.Context, req *driverv1.CompleteJobRequest) error {
	p := pendingResult{req: req, done: make(chan error, 1)}
	select {
	case r.in <- p:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	// The reporter answers every result it took, within its retries.
	return <-p.done
}

// run sends batches until ctx ends; by then no worker is waiting.
func (r *reporter) run(ctx context.Context) {
	for {
		var batch []pendingResult
		select {
		case <-ctx.Done():
			return
		case p := <-r.in:
			batch = append(batch, p)
		}
		var linger *time.Timer
		select {
		case <-r.d.idle: // news from before this batch
		default:
		}
		if r.d.working.Load() > 0 {
			linger = time.NewTimer(r.linger)
		}
	more:
		for len(batch) < maxReport {
			if linger == nil {
				select {
				case p := <-r.in:
					batch = append(batch, p)
				default:
					break more
				}
				continue
			}
			select {
			case p := <-r.in:
				batch = append(batch, p)
			case <-linger.C:
				break more
			case <-r.d.idle:
				// The last job in work was handed over; take what it
				// brought, if anything, and go.
				linger.Stop()
				linger = nil
			}
		}
		if linger != nil {
			linger.Stop()
		}
		r.send(ctx, batch)
	}
}

func (r *reporter) send(ctx context.Context, batch []pendingResult) {
	if !r.single.Load() {
		err := r.sendBatch(ctx, batch)
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			return
		}
		r.single.Store(true)
		r.d.logger.InfoContext(ctx, "the coordinator has no CompleteJobs; reporting results one by one")
	}
	for _, p := range batch {
		p.done <- r.d.report(ctx, r.d.logger, "CompleteJob", func(c context.Context) error {
			_, err := r.d.client.CompleteJob(c, connect.NewRequest(p.req))
			return err
		})
	}
}

// sendBatch sends one CompleteJobs and answers each result. It returns the
// call's error only when it is Unimplemented, leaving the results
// unanswered for the fallback.
func (r *reporter) sendBatch(ctx context.Context, batch []pendingResult) error {
	req := &driverv1.CompleteJobsRequest{Results: make([]*driverv1.CompleteJobRequest, len(batch))}
	for i, p := range batch {
		req.Results[i] = p.req
	}
	var resp *driverv1.CompleteJobsResponse
	err := r.d.report(ctx, r.d.logger, "CompleteJobs", func(c context.Context) error {
		res, err := r.d.client.CompleteJobs(c, connect.NewRequest(req))
		if err == nil {
			resp = res.Msg
		}
		return err
	})
	if connect.CodeOf(err) == connect.CodeUnimplemented {
		return err
	}
	for i, p := range batch {
		switch {
		case err != nil:
			p.done <- err
		case i >= len(resp.GetOutcomes()):
			p.done <- errors.New("the coordinator sent no outcome for this result")
		case resp.GetOutcomes()[i].GetOutcome() == driverv1.JobOutcome_JOB_OUTCOME_RECORDED:
			p.done <- nil
		default:
			o := resp.GetOutcomes()[i]
			p.done <- fmt.Errorf("%s: %s", o.GetOutcome(), o.GetError())
		}
	}
	return nil
}
