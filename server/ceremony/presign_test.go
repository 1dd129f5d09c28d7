package ceremony

import (
	"slices"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/server/store"
)

// presignOnce lets the orchestrator start one presigning and completes it.
func (f *fixture) presignOnce() *store.Ceremony {
	f.t.Helper()
	f.clock.Advance(time.Minute) // the signers have been idle
	f.step()                     // a presigning is recorded
	f.step()                     // and started
	all, err := f.store.OpenCeremonies(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var c *store.Ceremony
	for _, oc := range all {
		if oc.Kind == store.CeremonyPresign {
			c = oc
		}
	}
	if c == nil || c.State != store.CeremonyRunning || len(c.Parties) != 2 {
		f.t.Fatalf("presigning = %+v", c)
	}
	nonce, _ := secp256k1.GeneratePrivateKey()
	for _, p := range c.Parties {
		if err := f.o.complete(f.ctx, c, p, nonce.PubKey().SerializeCompressed()); err != nil {
			f.t.Fatal(err)
		}
	}
	return c
}

func TestPoolFilledWhenIdleAndUsedOnce(t *testing.T) {
	f := newFixtureWith(t, Config{PresignPool: 1}, group...)
	f.activeWallet()
	pc := f.presignOnce()
	if n, _ := f.store.PoolSize(f.ctx); n != 1 {
		t.Fatalf("pool size = %d, want 1", n)
	}
	f.clock.Advance(time.Minute)
	f.step() // the pool is full: nothing more starts
	if open, _ := f.store.OpenCeremonies(f.ctx); len(open) != 0 {
		t.Fatalf("presigning past the pool size: %v", open)
	}

	sg := f.requestSignature()
	f.step()
	c := f.open(sg.ID)
	// The quorum is a set: the pool keeps it in its own order.
	if c.PresignatureID != pc.ID || !slices.Equal(slices.Sorted(slices.Values(c.Parties)), slices.Sorted(slices.Values(pc.Parties))) {
		t.Fatalf("signing ran with presignature %q by %v, want %s by %v", c.PresignatureID, c.Parties, pc.ID, pc.Parties)
	}
	if err := f.o.complete(f.ctx, c, c.Parties[0], f.rs(sg.Digest)); err != nil {
		t.Fatal(err)
	}
	if got := f.signature(sg.ID); got.Status != store.SignatureSigned {
		t.Fatalf("signature = %s", got.Status)
	}
	// The presignature is gone: the next signature runs the full protocol
	// (the pool refills only when idle).
	sg2 := f.requestSignature()
	f.step()
	if c2 := f.open(sg2.ID); c2.PresignatureID != "" {
		t.Fatalf("presignature %s used twice", c2.PresignatureID)
	}
}

func TestPoolSkipsAQuorumThatIsDown(t *testing.T) {
	f := newFixtureWith(t, Config{PresignPool: 1}, group...)
	f.activeWallet()
	pc := f.presignOnce()
	f.presence.leave(pc.Parties[1], f.clock.Now())
	sg := f.requestSignature()
	f.step()
	c := f.open(sg.ID)
	if c.State != store.CeremonyRunning || c.PresignatureID != "" || slices.Contains(c.Parties, pc.Parties[1]) {
		t.Fatalf("signing = %s with %v and presignature %q; want the full protocol by the online signers", c.State, c.Parties, c.PresignatureID)
	}
	if n, _ := f.store.PoolSize(f.ctx); n != 1 {
		t.Fatalf("the unusable presignature was consumed: pool size %d", n)
	}
}

func TestExclusionDropsPresignatures(t *testing.T) {
	f := newFixtureWith(t, Config{PresignPool: 1}, group...)
	f.activeWallet()
	pc := f.presignOnce()
	sg := f.requestSignature()
	// A full-protocol attempt (pools off for its start) blames one of the
	// presignature's quorum.
	f.o.usePresigs.Store(false)
	f.step()
	c := f.open(sg.ID)
	f.o.usePresigs.Store(true)
	blamed := pc.Parties[0]
	if !slices.Contains(c.Parties, blamed) {
		blamed = pc.Parties[1]
	}
	if err := f.o.fail(f.ctx, c, blamed, "the protocol aborted", []string{blamed}, false); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.store.PoolSize(f.ctx); n != 0 {
		t.Fatalf("a presignature of excluded %s is still in the pool", blamed)
	}
}

func TestPoolTotalBound(t *testing.T) {
	f := newFixtureWith(t, Config{PresignPool: 5, PresignPoolTotal: 1}, group...)
	f.activeWallet()
	f.presignOnce()
	f.clock.Advance(time.Minute)
	f.step()
	if open, _ := f.store.OpenCeremonies(f.ctx); len(open) != 0 {
		t.Fatalf("presigning past the total bound: %v", open)
	}
}

// TestPoolAcrossCoordinatorRestart: a signing interrupted by a coordinator
// restart while it ran with a presignature is retried with the full
// protocol; the presignature is never given out again, and the rest of the
// pool is still used after the restart.
func TestPoolAcrossCoordinatorRestart(t *testing.T) {
	f := newFixtureWith(t, Config{PresignPool: 2}, group...)
	f.activeWallet()
	first := f.presignOnce()
	second := f.presignOnce()
	sg := f.requestSignature()
	f.step()
	c := f.open(sg.ID)
	if c.PresignatureID == "" {
		t.Fatal("the signing did not take a presignature")
	}
	// A new coordinator process over the same database takes the
	// ceremony over once the old one's lease lapsed.
	f.o = New(f.store, Config{PresignPool: 2, Now: f.clock.Now, Presence: f.presence})
	f.clock.Advance(f.o.cfg.LeaseTTL + time.Second)
	f.step()
	retry := f.open(sg.ID)
	if retry.ID == c.ID || retry.Attempt != 1 {
		t.Fatalf("after the restart: %+v", retry)
	}
	f.step()
	if retry = f.open(sg.ID); retry.State != store.CeremonyRunning || retry.PresignatureID != "" {
		t.Fatalf("the retry runs with presignature %q, want the full protocol", retry.PresignatureID)
	}
	if err := f.o.complete(f.ctx, retry, retry.Parties[0], f.rs(sg.Digest)); err != nil {
		t.Fatal(err)
	}
	// The other presignature serves the next signature.
	next := f.requestSignature()
	f.step()
	nc := f.open(next.ID)
	want := first.ID
	if c.PresignatureID == first.ID {
		want = second.ID
	}
	if nc.PresignatureID != want {
		t.Fatalf("next signature took %q, want the other presignature %s", nc.PresignatureID, want)
	}
}
