package api

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

// MaxWait bounds the wait of GetWallet and GetSignature (the proto
// validates the same bound).
const MaxWait = 60 * time.Second

// waitRecheck is how often a waiting call reads its row again without a
// wake-up. Outcomes applied by this process wake it at once; this only
// catches outcomes applied by another coordinator replica.
const waitRecheck = 5 * time.Second

// Waiter wakes a waiting call when the wallet or signature with an id may
// have settled (settle.Hub).
type Waiter interface {
	// Subscribe returns a channel closed at the next outcome for id and a
	// function to call when done waiting.
	Subscribe(id string) (<-chan struct{}, func())
}

// Option configures a WalletServer.
type Option func(*WalletServer)

// WithWaiter lets GetWallet and GetSignature hold a call (their wait
// field) until the outcome. Without a waiter a wait is served by
// rereading every waitRecheck.
func WithWaiter(w Waiter) Option { return func(s *WalletServer) { s.waiter = w } }

// waitDuration validates a request's wait.
func waitDuration(d *durationpb.Duration) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, fmt.Errorf("%w: wait: %v", errInvalidWait, err)
	}
	w := d.AsDuration()
	if w < 0 || w > MaxWait {
		return 0, fmt.Errorf("%w: wait must be between 0 and %s, got %s", errInvalidWait, MaxWait, w)
	}
	return w, nil
}

var errInvalidWait = wire.NewSentinel(connect.CodeInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, "invalid wait")

// awaitSettled reads a row with load until settled holds or wait passes,
// woken by the waiter rather than by polling. It returns the last row read.
func awaitSettled[T any](ctx context.Context, w Waiter, id string, wait time.Duration, load func(context.Context) (T, error), settled func(T) bool) (T, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	for {
		wake, release := subscribe(w, id)
		got, err := load(ctx)
		if err != nil || wait <= 0 || settled(got) {
			release()
			return got, err
		}
		recheck := time.NewTimer(waitRecheck)
		select {
		case <-wake:
		case <-recheck.C:
		case <-deadline:
			wait = 0 // read once more, then answer
		case <-ctx.Done():
			recheck.Stop()
			release()
			return got, fmt.Errorf("stopped waiting: %w", ctx.Err())
		}
		recheck.Stop()
		release()
	}
}

func subscribe(w Waiter, id string) (<-chan struct{}, func()) {
	if w == nil {
		return nil, func() {}
	}
	return w.Subscribe(id)
}

func walletSettled(w *store.Wallet) bool { return w.Status != store.WalletCreating }

func signatureSettled(s *store.Signature) bool { return s.Status != store.SignaturePending }
