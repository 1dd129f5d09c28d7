package sigil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
)

// Defaults of the waiting helpers.
const (
	// DefaultWalletWait bounds WaitWallet when WaitOptions.Timeout is 0:
	// MPC key generation takes tens of seconds on a small machine.
	DefaultWalletWait = 5 * time.Minute
	// DefaultSignatureWait bounds WaitSignature when
	// SignatureWaitOptions.Timeout is 0.
	DefaultSignatureWait = 2 * time.Minute
	// DefaultPollInterval is the first pause between two reads; it grows by
	// half each time up to DefaultMaxPollInterval.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultMaxPollInterval is the longest pause between two reads.
	DefaultMaxPollInterval = 2 * time.Second
)

// transientRetries is how many consecutive Unavailable or per-call
// DeadlineExceeded errors a wait absorbs before it gives up: a coordinator
// restarting or one slow read should not end a minute-long wait.
const transientRetries = 3

// pollConfig is what WaitOptions and SignatureWaitOptions share.
type pollConfig struct {
	interval, maxInterval, timeout, callTimeout time.Duration
}

func (p pollConfig) withDefaults(defaultTimeout time.Duration) pollConfig {
	if p.interval <= 0 {
		p.interval = DefaultPollInterval
	}
	p.interval = max(p.interval, 10*time.Millisecond)
	if p.maxInterval <= 0 {
		p.maxInterval = DefaultMaxPollInterval
	}
	p.maxInterval = max(p.maxInterval, p.interval)
	if p.timeout == 0 {
		p.timeout = defaultTimeout
	}
	return p
}

// poll reads with get until done holds, pausing with backoff between reads,
// within p.timeout (negative: no limit but ctx's). Each read is bounded by
// p.callTimeout as well (the client's WithTimeout; 0: no bound). describe says where things stand, for errors.
func poll[T any](ctx context.Context, p pollConfig, get func(context.Context) (T, error), done func(T) bool,
	describe func(T, bool) string, progress func(T, time.Duration)) (T, error) {
	var zero, last T
	haveLast := false
	started := time.Now()
	what := func() string { return describe(last, haveLast) }
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, p.timeout, errWaitTimeout)
		defer cancel()
	}
	stopped := func() error {
		if errors.Is(context.Cause(ctx), errWaitTimeout) {
			return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("sigil: gave up after %v: %s", p.timeout, what()))
		}
		code := connect.CodeCanceled
		if ctx.Err() == context.DeadlineExceeded {
			code = connect.CodeDeadlineExceeded
		}
		return connect.NewError(code, fmt.Errorf("sigil: stopped waiting, %s: %w", what(), ctx.Err()))
	}
	interval := p.interval
	transient := 0
	for {
		if ctx.Err() != nil {
			return zero, stopped()
		}
		callCtx, cancel := ctx, context.CancelFunc(func() {})
		if p.callTimeout > 0 {
			callCtx, cancel = context.WithTimeout(ctx, p.callTimeout)
		}
		got, err := get(callCtx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return zero, stopped()
			}
			code := connect.CodeOf(err)
			if (code == connect.CodeUnavailable || code == connect.CodeDeadlineExceeded) && transient < transientRetries {
				transient++
			} else {
				return zero, err
			}
		} else {
			transient = 0
			last, haveLast = got, true
			if progress != nil {
				progress(got, time.Since(started))
			}
			if done(got) {
				return got, nil
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, stopped()
		case <-t.C:
		}
		interval = min(p.maxInterval, interval*3/2)
	}
}

// errWaitTimeout marks the end of a wait's own time limit, as opposed to a
// deadline of the caller's context.
var errWaitTimeout = errors.New("sigil: wait timed out")
