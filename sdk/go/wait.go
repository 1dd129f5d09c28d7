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
	// HoldWait is how long each read asks the server to hold the call
	// until the outcome (the wait field of GetWallet and GetSignature):
	// the server answers the moment the wallet or signature settles, so a
	// wait costs one call per HoldWait rather than one per poll interval.
	// It is shortened to fit the wait's timeout and the client's per-call
	// timeout. Servers that do not hold calls are read with the poll
	// intervals above.
	HoldWait = 25 * time.Second
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

// poll reads with get until done holds, within p.timeout (negative: no
// limit but ctx's). Each read after the first asks the server to hold it
// until the outcome
// (hold, see HoldWait); a read that came back sooner, from a server that
// does not hold calls, is followed by a pause that grows with backoff.
// Each read is bounded by p.callTimeout as well (the client's WithTimeout;
// 0: no bound). describe says where things stand, for errors.
func poll[T any](ctx context.Context, p pollConfig, get func(ctx context.Context, hold time.Duration) (T, error), done func(T) bool,
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
		// The first read answers at once, so the caller learns where
		// things stand; the next ones are held until the outcome.
		var hold time.Duration
		if haveLast {
			hold = p.hold(ctx)
		}
		callStart := time.Now()
		got, err := get(callCtx, hold)
		cancel()
		held := time.Since(callStart)
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
		// After the first read the next one is held, so it follows at once;
		// a held read that came back early (a server that does not hold
		// calls) is followed by the rest of the poll interval.
		pause := time.Duration(0)
		switch {
		case err != nil:
			pause = interval
		case hold > 0:
			pause = max(0, interval-held)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, stopped()
		case <-t.C:
		}
		interval = min(p.maxInterval, interval*3/2)
	}
}

// hold is how long the next read may ask the server to hold: HoldWait,
// shortened to leave a quarter of the per-call timeout and to end with the
// wait (whole milliseconds; 0 below one).
func (p pollConfig) hold(ctx context.Context) time.Duration {
	h := HoldWait
	if p.callTimeout > 0 {
		h = min(h, p.callTimeout-p.callTimeout/4)
	}
	if d, ok := ctx.Deadline(); ok {
		h = min(h, time.Until(d)-100*time.Millisecond)
	}
	return max(0, h.Truncate(time.Millisecond))
}

// errWaitTimeout marks the end of a wait's own time limit, as opposed to a
// deadline of the caller's context.
var errWaitTimeout = errors.New("sigil: wait timed out")
