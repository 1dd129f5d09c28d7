package ceremony

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/server/store"
)

// replica adds a second orchestrator on f's database, clock and presence.
func (f *fixture) replica(name string) *Orchestrator {
	return New(f.store, Config{Now: f.clock.Now, Presence: f.presence, Replica: name})
}

func stepOf(t *testing.T, f *fixture, o *Orchestrator) {
	t.Helper()
	if err := o.step(f.ctx); err != nil {
		t.Fatal(err)
	}
}

// A replica that starts (or steps) while another drives a ceremony leaves it
// alone as long as the owner renews its lease, however long it runs.
func TestReplicaLeavesALiveLeaseAlone(t *testing.T) {
	f := newFixtureWith(t, Config{Replica: "a"}, group...)
	f.activeWallet()
	sg := f.requestSignature()
	f.step()
	c := f.open(sg.ID)
	if c.State != store.CeremonyRunning || c.Lease.Owner != "a" {
		t.Fatalf("ceremony = %s owned by %q, want running owned by a", c.State, c.Lease.Owner)
	}
	b := f.replica("b")
	for range 10 {
		f.clock.Advance(f.o.cfg.LeaseTTL / 2)
		f.step() // a renews
		stepOf(t, f, b)
	}
	got := f.open(sg.ID)
	if got.ID != c.ID || got.State != store.CeremonyRunning || got.Lease.Owner != "a" || got.Lease.Epoch != c.Lease.Epoch {
		t.Fatalf("after b stepped: %s %s owned by %q epoch %d", got.ID, got.State, got.Lease.Owner, got.Lease.Epoch)
	}
}

// When the owner stops renewing, another replica takes the ceremony over
// within the lease: the attempt fails and the signature is retried, now
// driven by the new owner.
func TestReplicaTakesOverAnExpiredLease(t *testing.T) {
	f := newFixtureWith(t, Config{Replica: "a"}, group...)
	f.activeWallet()
	sg := f.requestSignature()
	f.step()
	c := f.open(sg.ID)
	b := f.replica("b")
	f.clock.Advance(f.o.cfg.LeaseTTL - time.Millisecond)
	stepOf(t, f, b)
	if got := f.open(sg.ID); got.ID != c.ID || got.Lease.Owner != "a" {
		t.Fatalf("b acted before the lease expired: %+v", got.Lease)
	}
	f.clock.Advance(2 * time.Millisecond)
	stepOf(t, f, b)
	ended, _ := f.store.GetCeremony(f.ctx, c.ID)
	if ended.State != store.CeremonyFailed || !strings.Contains(ended.FailureReason, "(a) stopped or restarted") {
		t.Fatalf("taken-over attempt = %s: %q", ended.State, ended.FailureReason)
	}
	if ended.Lease.Owner != "b" || ended.Lease.Epoch != c.Lease.Epoch+1 {
		t.Fatalf("lease after takeover = %+v", ended.Lease)
	}
	stepOf(t, f, b)
	retry := f.open(sg.ID)
	if retry.Attempt != 1 || retry.State != store.CeremonyRunning || retry.Lease.Owner != "b" {
		t.Fatalf("retry = attempt %d %s owned by %q", retry.Attempt, retry.State, retry.Lease.Owner)
	}
	if err := f.o.complete(f.ctx, retry, retry.Parties[0], f.rs(sg.Digest)); err != nil {
		t.Fatal(err)
	}
	if got := f.signature(sg.ID); got.Status != store.SignatureSigned {
		t.Fatalf("signature = %s (%s)", got.Status, got.FailureReason)
	}
}

// A replica paused past its lease that resumes with what it knew before
// the pause cannot end the ceremony another replica took over: the write
// is fenced by the lease epoch, and nothing runs twice.
func TestResumedReplicaIsFenced(t *testing.T) {
	f := newFixtureWith(t, Config{Replica: "a"}, group...)
	w, kc := f.createWallet()
	f.step()
	stale, err := f.store.GetCeremony(f.ctx, kc.ID)
	if err != nil || stale.State != store.CeremonyRunning || stale.Lease.Owner != "a" {
		t.Fatalf("keygen = %+v, %v", stale, err)
	}
	// a is paused; b takes the keygen over when the lease lapses, and
	// starts it again: the wallet waits for its key.
	f.clock.Advance(f.o.cfg.LeaseTTL + time.Second)
	b := f.replica("b")
	stepOf(t, f, b)
	if wallet, _ := f.store.GetWallet(f.ctx, w.ID); wallet.Status != store.WalletCreating {
		t.Fatalf("wallet after takeover = %s (%s), want creating", wallet.Status, wallet.FailureReason)
	}
	taken, _ := f.store.GetCeremony(f.ctx, kc.ID)
	if taken.State != store.CeremonyFailed || !strings.Contains(taken.FailureReason, "stopped or restarted") {
		t.Fatalf("taken-over keygen = %s: %q", taken.State, taken.FailureReason)
	}
	// a resumes: its renewal finds nothing, and its stale view of the
	// ceremony (timed out by now) cannot end it again.
	f.clock.Advance(f.o.cfg.KeygenTimeout)
	if n, err := f.store.RenewLeases(f.ctx, "a", f.clock.Now(), f.clock.Now().Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("a renewed %d leases (%v) after losing them", n, err)
	}
	if err := f.o.checkRunning(f.ctx, stale); err != nil {
		t.Fatal(err)
	}
	got, _ := f.store.GetCeremony(f.ctx, kc.ID)
	if !strings.Contains(got.FailureReason, "stopped or restarted") {
		t.Fatalf("the resumed replica rewrote the outcome: %q", got.FailureReason)
	}
	// Even a result arriving on the stale view is fenced: the lost
	// attempt's key never becomes the wallet's.
	err = f.o.finish(f.ctx, stale, &store.CeremonyFinish{State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: make([]byte, 33)}})
	if err != nil {
		t.Fatal(err)
	}
	if wallet, _ := f.store.GetWallet(f.ctx, w.ID); wallet.Status != store.WalletCreating {
		t.Fatalf("wallet = %s after a fenced finish", wallet.Status)
	}
	// The second attempt, with the same signers, makes the key.
	var retry *store.Ceremony
	open, _ := f.store.OpenCeremonies(f.ctx)
	for _, c := range open {
		if c.WalletID == w.ID {
			if retry != nil {
				t.Fatalf("two open key generations for the wallet: %s and %s", retry.ID, c.ID)
			}
			retry = c
		}
	}
	if retry == nil || retry.Kind != store.CeremonyKeygen || retry.Attempt != 1 || !slices.Equal(retry.GroupSigners, kc.GroupSigners) {
		t.Fatalf("retried keygen = %+v", retry)
	}
	stepOf(t, f, b)
	retry, _ = f.store.GetCeremony(f.ctx, retry.ID)
	if retry.State != store.CeremonyRunning || retry.Lease.Owner != "b" {
		t.Fatalf("retried keygen = %s owned by %q", retry.State, retry.Lease.Owner)
	}
	// Each attempt lost with its replica starts another, up to the bound;
	// then the wallet fails, naming why.
	for attempt := retry.Attempt; attempt < f.o.cfg.MaxSignAttempts; attempt++ {
		f.clock.Advance(f.o.cfg.LeaseTTL + time.Second)
		stepOf(t, f, f.replica(fmt.Sprint("c", attempt))) // b died too
		f.clock.Advance(time.Millisecond)
		stepOf(t, f, f.replica(fmt.Sprint("d", attempt))) // start the next one
	}
	wallet, _ := f.store.GetWallet(f.ctx, w.ID)
	if wallet.Status != store.WalletFailed || !strings.Contains(wallet.FailureReason, "stopped or restarted") {
		t.Fatalf("wallet after %d lost attempts = %s (%q)", f.o.cfg.MaxSignAttempts, wallet.Status, wallet.FailureReason)
	}
	// A signature taken over is retried once, not once per replica.
	f.activeWallet()
	sg := f.requestSignature()
	f.step()
	c0 := f.open(sg.ID)
	f.clock.Advance(f.o.cfg.LeaseTTL + time.Second)
	stepOf(t, f, b)
	if err := f.o.failAttempt(f.ctx, c0, "stale view", nil); err != nil {
		t.Fatal(err)
	}
	if retry := f.open(sg.ID); retry.Attempt != 1 {
		t.Fatalf("open attempt = %d, want 1", retry.Attempt)
	}
}

// Signers connected to different replicas meet in one ceremony: each
// replica records its streams in the presence rows, the one that starts the
// ceremony sees the other's signer online, and the other replica hands the
// ceremony (and later its end) to the signer connected to it.
func TestCeremonyReachesSignersOnAnotherReplica(t *testing.T) {
	f := newFixture(t)
	f.activeWallet()
	a := New(f.store, Config{Now: f.clock.Now, Replica: "a"})
	b := New(f.store, Config{Now: f.clock.Now, Replica: "b"})
	join := func(o *Orchestrator, name string) *signerConn {
		c := o.streams.join(name, []byte("announcement of "+name), f.clock.Now())
		o.signerJoined(f.ctx, c)
		return c
	}
	c1 := join(a, "signer-1")
	c3 := join(b, "signer-3")
	sg := f.requestSignature()
	stepOf(t, f, b) // b reads a's row, sees signer-1 online and starts
	c := f.open(sg.ID)
	if c.State != store.CeremonyRunning || len(c.Parties) != 2 || c.Lease.Owner != "b" {
		t.Fatalf("ceremony = %s with %v owned by %q", c.State, c.Parties, c.Lease.Owner)
	}
	if ev := next(t, c3); ev.GetCeremony().GetId() != c.ID {
		t.Fatalf("b's own signer got %v", ev)
	}
	stepOf(t, f, a)
	ev := next(t, c1)
	if ev.GetCeremony().GetId() != c.ID || len(ev.GetCeremony().GetPeers()) != 2 {
		t.Fatalf("signer-1 on replica a got %v", ev)
	}
	stepOf(t, f, a) // nothing new: not sent twice
	if len(c1.events) != 0 {
		t.Fatalf("replica a sent the ceremony again")
	}
	if err := b.complete(f.ctx, c, "signer-3", f.rs(sg.Digest)); err != nil {
		t.Fatal(err)
	}
	stepOf(t, f, a)
	if ev := next(t, c1); ev.GetEnded().GetCeremonyId() != c.ID || ev.GetEnded().GetState() != ceremonyv1.CeremonyState_CEREMONY_STATE_SUCCEEDED {
		t.Fatalf("signer-1 got %v, want the end of %s", ev, c.ID)
	}
	// signer-1's replica dies: its heartbeat row goes stale and b no longer
	// counts it online.
	f.clock.Advance(b.cfg.LeaseTTL + time.Second)
	stepOf(t, f, b)
	if got := b.presence.Online(group); len(got) != 1 || got[0] != "signer-3" {
		t.Fatalf("online seen from b = %v", got)
	}
}

func next(t *testing.T, c *signerConn) *ceremonyv1.WatchCeremoniesResponse {
	t.Helper()
	select {
	case ev := <-c.events:
		return ev
	default:
		t.Fatal("no event queued")
		return nil
	}
}

// On PostgreSQL a replica wakes the others through LISTEN/NOTIFY: a message
// relayed through replica a wakes the Receive streams of replica b, and a
// settled signature reaches b's waiters, without b polling.
func TestWakeupsReachAnotherReplica(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := store.Open(ctx, dbtest.Open(t, db.Postgres))
	if err != nil {
		t.Fatal(err)
	}
	settled := make(chan []string, 4)
	a := New(s, Config{Replica: "a"})
	b := New(s, Config{Replica: "b", Settled: func(ids ...string) { settled <- ids }})
	select {
	case <-b.wake: // New's own wake-up
	default:
	}
	go b.listen(ctx)
	<-b.wake // the listener is connected
	relayed, release := b.hub.Subscribe("cer_1")
	defer release()
	a.wakeOthers(ctx, wakeRelay, "cer_1")
	select {
	case <-relayed:
	case <-time.After(10 * time.Second):
		t.Fatal("b's Receive streams were not woken")
	}
	a.wakeOthers(ctx, wakeSettled, "sig_1", "wal_1")
	select {
	case ids := <-settled:
		if !slices.Equal(ids, []string{"sig_1", "wal_1"}) {
			t.Fatalf("settled = %v", ids)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b's waiters were not told")
	}
	a.wakeOthers(ctx, wakeCeremony, "cer_2")
	select {
	case <-b.wake:
	case <-time.After(10 * time.Second):
		t.Fatal("b's step was not woken")
	}
}
