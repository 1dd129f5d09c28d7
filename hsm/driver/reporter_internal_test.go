package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
)

// reportClient records how results reach the coordinator.
type reportClient struct {
	driverv1connect.DriverServiceClient // unused methods panic
	noBatch                             bool
	mu                                  sync.Mutex
	batches                             [][]string
	singles                             []string
	lost                                map[string]bool
}

func (c *reportClient) CompleteJobs(_ context.Context, req *connect.Request[driverv1.CompleteJobsRequest]) (*connect.Response[driverv1.CompleteJobsResponse], error) {
	if c.noBatch {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no such procedure"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	resp := &driverv1.CompleteJobsResponse{}
	for _, r := range req.Msg.GetResults() {
		ids = append(ids, r.GetJobId())
		o := &driverv1.CompleteJobOutcome{JobId: r.GetJobId(), Outcome: driverv1.JobOutcome_JOB_OUTCOME_RECORDED}
		if c.lost[r.GetJobId()] {
			o.Outcome, o.Error = driverv1.JobOutcome_JOB_OUTCOME_LEASE_LOST, "lease lapsed"
		}
		resp.Outcomes = append(resp.Outcomes, o)
	}
	c.batches = append(c.batches, ids)
	return connect.NewResponse(resp), nil
}

func (c *reportClient) CompleteJob(_ context.Context, req *connect.Request[driverv1.CompleteJobRequest]) (*connect.Response[driverv1.CompleteJobResponse], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.singles = append(c.singles, req.Msg.GetJobId())
	if c.lost[req.Msg.GetJobId()] {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("lease lapsed"))
	}
	return connect.NewResponse(&driverv1.CompleteJobResponse{}), nil
}

// reportAll sends n results at once through a reporter and returns each
// one's answer, by job id.
func reportAll(t *testing.T, c *reportClient, ids ...string) map[string]error {
	t.Helper()
	d := New(Options{Client: c})
	rep := newReporter(d)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); rep.run(ctx) }()
	var mu sync.Mutex
	out := map[string]error{}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			err := rep.complete(t.Context(), &driverv1.CompleteJobRequest{JobId: id})
			mu.Lock()
			out[id] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	cancel()
	<-done
	return out
}

// TestReporterBatches: results that finish together travel together, and
// each gets its own outcome.
func TestReporterBatches(t *testing.T) {
	c := &reportClient{lost: map[string]bool{"job-b": true}}
	got := reportAll(t, c, "job-a", "job-b", "job-c")
	if got["job-a"] != nil || got["job-c"] != nil || got["job-b"] == nil || !strings.Contains(got["job-b"].Error(), "LEASE_LOST") {
		t.Fatalf("answers = %v", got)
	}
	n := 0
	for _, b := range c.batches {
		n += len(b)
	}
	if n != 3 || len(c.singles) != 0 {
		t.Fatalf("batches %v, singles %v: want every result in CompleteJobs", c.batches, c.singles)
	}
}

// TestReporterFallsBackToCompleteJob: a coordinator without CompleteJobs
// (an older version) gets each result by CompleteJob.
func TestReporterFallsBackToCompleteJob(t *testing.T) {
	c := &reportClient{noBatch: true, lost: map[string]bool{"job-b": true}}
	got := reportAll(t, c, "job-a", "job-b")
	if got["job-a"] != nil || connect.CodeOf(got["job-b"]) != connect.CodeFailedPrecondition {
		t.Fatalf("answers = %v", got)
	}
	if len(c.singles) != 2 || len(c.batches) != 0 {
		t.Fatalf("singles %v, batches %v", c.singles, c.batches)
	}
}

// TestReporterLingers: while the driver still works on other jobs, a
// result waits a moment for the next ones, and they travel together; with
// nothing else in work, a result goes at once.
func TestReporterLingers(t *testing.T) {
	c := &reportClient{}
	d := New(Options{Client: c})
	rep := newReporter(d)
	rep.linger = time.Second // long enough that only the linger explains a shared batch
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); rep.run(ctx) }()
	defer func() { cancel(); <-done }()
	send := func(id string) <-chan error {
		out := make(chan error, 1)
		go func() { out <- rep.complete(t.Context(), &driverv1.CompleteJobRequest{JobId: id}) }()
		return out
	}

	// Alone: answered well before the linger would have ended.
	start := time.Now()
	if err := <-send("job-alone"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > rep.linger/2 {
		t.Fatalf("a lone result took %v: it lingered with nothing else in work", took)
	}

	// Other jobs in work: the first result waits for the second.
	d.working.Add(2)
	first := send("job-first")
	time.Sleep(50 * time.Millisecond)
	second := send("job-second")
	if err := errors.Join(<-first, <-second); err != nil {
		t.Fatal(err)
	}
	d.working.Add(-2)

	// The last job in work handed over: the result before it stops
	// lingering and goes, with it if it came.
	d.working.Add(1)
	start = time.Now()
	third := send("job-third")
	time.Sleep(20 * time.Millisecond)
	d.doneWorking()
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > rep.linger/2 {
		t.Fatalf("the result took %v: it kept lingering after the last job in work was handed over", took)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	want := [][]string{{"job-alone"}, {"job-first", "job-second"}, {"job-third"}}
	if fmt.Sprint(c.batches) != fmt.Sprint(want) {
		t.Fatalf("batches = %v, want %v", c.batches, want)
	}
}
