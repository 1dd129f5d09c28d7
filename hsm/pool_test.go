package hsm_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/hsm"
)

// Many goroutines share a pool of 4 sessions; every signature must verify
// and no session object may survive.
func TestConcurrentUse(t *testing.T) {
	var calls sync.Map // op -> *atomic.Int64
	cfg := newConfig(t, "concurrent")
	cfg.Sessions = 4
	cfg.ObserveCall = func(op string, d time.Duration, err error) {
		n, _ := calls.LoadOrStore(op, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if err != nil {
			t.Errorf("%s failed: %v", op, err)
		}
	}
	h := openToken(t, cfg)
	ctx := testContext(t)
	if err := h.InitMasterKey(ctx); err != nil {
		t.Fatal(err)
	}

	const workers, perWorker = 32, 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			pub, wrapped, err := h.GenerateKey(ctx)
			if err != nil {
				t.Errorf("worker %d GenerateKey: %v", w, err)
				return
			}
			pk, _ := secp256k1.ParsePubKey(pub)
			for range perWorker {
				digest := make([]byte, 32)
				_, _ = rand.Read(digest)
				sig, err := h.Sign(ctx, wrapped, pub, digest)
				if err != nil {
					t.Errorf("worker %d Sign: %v", w, err)
					return
				}
				checkSignature(t, sig, pk, digest)
			}
		})
	}
	wg.Wait()

	if n, err := h.SessionObjectCount(ctx); err != nil || n != 0 {
		t.Fatalf("session objects left = %d, %v; want 0", n, err)
	}
	if n, err := h.TokenObjectCount(ctx); err != nil || n != 1 {
		t.Fatalf("token objects = %d, %v; want 1 (the master key)", n, err)
	}
	count := func(op string) int64 {
		n, ok := calls.Load(op)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}
	// Each GenerateKey signs once as a self-check.
	signs := int64(workers*perWorker + workers)
	want := map[string]int64{
		"generate": workers + 1, // + the master key
		"wrap":     workers,
		"unwrap":   signs,
		"sign":     signs,
		"destroy":  2*workers + signs,
	}
	for op, n := range want {
		if got := count(op); got != n {
			t.Errorf("ObserveCall(%q) called %d times, want %d", op, got, n)
		}
	}
}

// A caller waiting for a session gives up when its context ends.
func TestWaitForSessionHonoursContext(t *testing.T) {
	h := newHSM(t, "wait", 1)
	sign, done, err := h.ResidentSigner(testContext(t)) // holds the only session
	if err != nil {
		t.Fatal(err)
	}
	_ = sign
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = h.GenerateKey(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GenerateKey with exhausted pool: %v, want deadline exceeded", err)
	}
	done()
	if _, _, err := h.GenerateKey(testContext(t)); err != nil {
		t.Fatalf("GenerateKey after the session came back: %v", err)
	}
}

// When the module closes every session (as on a device reset, which also
// logs out and, in SoftHSM, invalidates all object handles), the pool
// replaces the sessions, logs in again and finds the master key again, and
// callers see no error.
func TestSessionsReplacedAfterReset(t *testing.T) {
	h := newHSM(t, "reset", 3)
	ctx := testContext(t)
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.BreakSessions(); err != nil {
		t.Fatal(err)
	}
	digest := make([]byte, 32)
	for i := range 10 {
		if _, err := h.Sign(ctx, wrapped, pub, digest); err != nil {
			t.Fatalf("Sign %d after reset: %v", i, err)
		}
	}
	if _, _, err := h.GenerateKey(ctx); err != nil {
		t.Fatalf("GenerateKey after reset: %v", err)
	}
	if n, err := h.SessionObjectCount(ctx); err != nil || n != 0 {
		t.Fatalf("session objects left = %d, %v; want 0", n, err)
	}
}

// Close waits for operations in flight, then refuses new ones.
func TestCloseWhileBusy(t *testing.T) {
	cfg := newConfig(t, "close-busy")
	cfg.Sessions = 2
	h, err := hsm.OpenToken(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if err := h.InitMasterKey(ctx); err != nil {
		t.Fatal(err)
	}
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				_, err := h.Sign(ctx, wrapped, pub, make([]byte, 32))
				if errors.Is(err, hsm.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Sign: %v", err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
}
