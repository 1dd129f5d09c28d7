package ceremony

import (
	"testing"

	"github.com/sigil-wallet/sigil/server/store"
)

// states counts the open ceremonies of each kind by state.
func (f *fixture) states(kind store.CeremonyKind) (running, waiting []*store.Ceremony) {
	f.t.Helper()
	open, err := f.store.OpenCeremonies(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range open {
		switch {
		case c.Kind != kind:
		case c.State == store.CeremonyRunning:
			running = append(running, c)
		case c.State == store.CeremonyWaiting:
			waiting = append(waiting, c)
		}
	}
	return running, waiting
}

func (f *fixture) finishKeygen(c *store.Ceremony) {
	f.t.Helper()
	pub := make([]byte, 33)
	pub[0] = 2
	if err := f.o.finish(f.ctx, c, &store.CeremonyFinish{State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: pub}}); err != nil {
		f.t.Fatal(err)
	}
}

// Twelve key generations asked at once start at most the bound per signer;
// the others queue in order, do not time out while queued however long
// that is, and each gets its full timeout from its own start.
func TestTwelveKeygensQueueWithinTheBound(t *testing.T) {
	f := newFixtureWith(t, Config{MaxConcurrent: 2}, group...)
	var all []string
	for range 12 {
		_, c := f.createWallet()
		all = append(all, c.ID)
	}
	f.step()
	running, waiting := f.states(store.CeremonyKeygen)
	if len(running) != 2 || len(waiting) != 10 {
		t.Fatalf("%d running, %d waiting; want 2 and 10", len(running), len(waiting))
	}
	if running[0].ID != all[0] || running[1].ID != all[1] {
		t.Fatalf("started %s, %s; want the first two asked", running[0].ID, running[1].ID)
	}
	for done := 0; done < 12; done++ {
		// Four key generation timeouts pass while the last ones queue; each
		// running one runs two thirds of its own at most.
		f.clock.Advance(f.o.cfg.KeygenTimeout / 3)
		f.step()
		running, _ = f.states(store.CeremonyKeygen)
		if len(running) > 2 {
			t.Fatalf("%d key generations run at once with a bound of 2", len(running))
		}
		if want := min(2, 12-done); len(running) != want {
			t.Fatalf("after %d done: %d running, want %d", done, len(running), want)
		}
		c := running[0]
		if c.ID != all[done] {
			t.Fatalf("key generation %s ran out of order, want %s", c.ID, all[done])
		}
		if !c.Deadline.After(f.clock.Now()) {
			t.Fatalf("the deadline of %s counts its time in the queue: %v", c.ID, c.Deadline)
		}
		f.finishKeygen(c)
	}
	running, waiting = f.states(store.CeremonyKeygen)
	if len(running)+len(waiting) != 0 {
		t.Fatalf("left %d running, %d waiting", len(running), len(waiting))
	}
}

// A signature asked after key generations that wait for the same signers
// starts before them when a slot frees.
func TestSignatureGoesAheadOfQueuedKeygens(t *testing.T) {
	f := newFixtureWith(t, Config{MaxConcurrent: 1}, group...)
	f.activeWallet()
	_, k1 := f.createWallet()
	_, k2 := f.createWallet()
	f.step()
	if running, _ := f.states(store.CeremonyKeygen); len(running) != 1 || running[0].ID != k1.ID {
		t.Fatalf("running keygens = %v, want only the first", running)
	}
	sg := f.requestSignature()
	f.clock.Advance(f.o.cfg.QuorumWait * 3) // queued: not a missing quorum
	f.step()
	if c := f.open(sg.ID); c.State != store.CeremonyWaiting {
		t.Fatalf("signature %s while every signer is busy", c.State)
	}
	running, _ := f.states(store.CeremonyKeygen)
	f.finishKeygen(running[0])
	f.step()
	c := f.open(sg.ID)
	if c.State != store.CeremonyRunning {
		t.Fatalf("signature = %s, want running ahead of the queued key generation", c.State)
	}
	// t = 2 of 3 sign; the third signer is free but held for the queued
	// key generation, which needs all three.
	if running, _ := f.states(store.CeremonyKeygen); len(running) != 0 {
		t.Fatalf("key generation %s started beside the signature", running[0].ID)
	}
	if err := f.o.complete(f.ctx, c, c.Parties[0], f.rs(sg.Digest)); err != nil {
		t.Fatal(err)
	}
	f.step()
	if running, _ := f.states(store.CeremonyKeygen); len(running) != 1 || running[0].ID != k2.ID {
		t.Fatalf("after the signature: running %v, want %s", running, k2.ID)
	}
}
