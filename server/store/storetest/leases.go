package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/server/store"
)

// testCeremonyLeases: a start takes a lease, its owner renews it while it
// holds, another replica takes it over only once it expired, and an outcome
// written on the lost lease is refused (fencing).
func testCeremonyLeases(t *testing.T, s store.Store) {
	ctx := context.Background()
	w, c := openKeygen(t, s)
	now := time.Now().Truncate(time.Microsecond)
	la, err := s.StartLeased(ctx, c.ID, w.Signers, now.Add(time.Minute), "replica-a", now.Add(5*time.Second), 0)
	if err != nil || la.Owner != "replica-a" || la.Epoch != 1 || !la.Until.Equal(now.Add(5*time.Second)) {
		t.Fatalf("StartLeased = %+v, %v", la, err)
	}
	if _, err := s.StartLeased(ctx, c.ID, w.Signers, now, "replica-b", now, 0); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("second start: %v", err)
	}
	got, err := s.GetCeremony(ctx, c.ID)
	if err != nil || got.Lease != la {
		t.Fatalf("ceremony lease = %+v, %v; want %+v", got.Lease, err, la)
	}
	// An unexpired lease is the holder's: no takeover, renewals work.
	if _, err := s.TakeOverCeremony(ctx, c.ID, la.Epoch, "replica-b", now.Add(time.Second), now.Add(6*time.Second)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("takeover of a live lease: %v", err)
	}
	if n, err := s.RenewLeases(ctx, "replica-a", now.Add(4*time.Second), now.Add(9*time.Second)); err != nil || n != 1 {
		t.Fatalf("RenewLeases = %d, %v", n, err)
	}
	if n, err := s.RenewLeases(ctx, "replica-b", now.Add(4*time.Second), now.Add(9*time.Second)); err != nil || n != 0 {
		t.Fatalf("RenewLeases by a non-owner = %d, %v", n, err)
	}
	// Once expired, even its owner cannot renew it; another replica takes it.
	if n, err := s.RenewLeases(ctx, "replica-a", now.Add(10*time.Second), now.Add(15*time.Second)); err != nil || n != 0 {
		t.Fatalf("RenewLeases of an expired lease = %d, %v", n, err)
	}
	lb, err := s.TakeOverCeremony(ctx, c.ID, la.Epoch, "replica-b", now.Add(10*time.Second), now.Add(15*time.Second))
	if err != nil || lb.Owner != "replica-b" || lb.Epoch != 2 {
		t.Fatalf("takeover = %+v, %v", lb, err)
	}
	// A second taker that saw the same epoch loses.
	if _, err := s.TakeOverCeremony(ctx, c.ID, la.Epoch, "replica-c", now.Add(20*time.Second), now.Add(25*time.Second)); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("second takeover: %v", err)
	}
	// The old owner resumes and tries to end it on its lost lease: refused,
	// and nothing changed.
	err = s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonyFailed, Reason: "stale",
		Lease: &la, Wallet: &store.WalletOutcome{Status: store.WalletFailed, Reason: "stale"}})
	if !errors.Is(err, store.ErrLeaseLost) || !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("finish on a lost lease: %v", err)
	}
	if got, _ := s.GetWallet(ctx, w.ID); got.Status != store.WalletCreating {
		t.Fatalf("wallet after a fenced finish = %s", got.Status)
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonySucceeded, Lease: &lb,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: PubKey}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetWallet(ctx, w.ID); got.Status != store.WalletActive {
		t.Fatalf("wallet = %s, want active", got.Status)
	}
}

// testCeremonyLeaseRelease: a clean shutdown lets its leases lapse at once.
func testCeremonyLeaseRelease(t *testing.T, s store.Store) {
	ctx := context.Background()
	w, c := openKeygen(t, s)
	now := time.Now().Truncate(time.Microsecond)
	la, err := s.StartLeased(ctx, c.ID, w.Signers, now.Add(time.Minute), "replica-a", now.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLeases(ctx, "replica-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeOverCeremony(ctx, c.ID, la.Epoch, "replica-b", now, now.Add(5*time.Second)); err != nil {
		t.Fatalf("takeover after release: %v", err)
	}
}

// testSignerPresence: rows say where each signer is connected; a stale
// stream's close does not mark a reconnected signer offline.
func testSignerPresence(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Microsecond)
	if err := s.SignerJoined(ctx, &store.SignerPresence{Signer: "signer-1", Replica: "a", Stream: 1, Announcement: []byte("ann-1"), ConnectedAt: now}); err != nil {
		t.Fatal(err)
	}
	// signer-1 reconnects to replica b before a's stream noticed.
	if err := s.SignerJoined(ctx, &store.SignerPresence{Signer: "signer-1", Replica: "b", Stream: 7, Announcement: []byte("ann-2"), ConnectedAt: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SignerLeft(ctx, "signer-1", "a", 1, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.HeartbeatSigners(ctx, "b", now.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	ps, err := s.SignerPresences(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("SignerPresences = %v, %v", ps, err)
	}
	p := ps[0]
	if p.Replica != "b" || p.Stream != 7 || !bytes.Equal(p.Announcement, []byte("ann-2")) || !p.LeftAt.IsZero() ||
		!p.HeartbeatAt.Equal(now.Add(3*time.Second)) || !p.ConnectedAt.Equal(now.Add(time.Second)) {
		t.Fatalf("presence = %+v", p)
	}
	if err := s.SignerLeft(ctx, "signer-1", "b", 7, now.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.HeartbeatSigners(ctx, "b", now.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	ps, _ = s.SignerPresences(ctx)
	if !ps[0].LeftAt.Equal(now.Add(4*time.Second)) || !ps[0].HeartbeatAt.Equal(now.Add(3*time.Second)) {
		t.Fatalf("presence after leaving = %+v", ps[0])
	}
}

// testCeremonyStartBound: a start that would give a signer more than the
// bound of running ceremonies is refused, and allowed again once one ends.
func testCeremonyStartBound(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	w1, c1 := openKeygen(t, s)
	_, c2 := openKeygen(t, s)
	if _, err := s.StartLeased(ctx, c1.ID, w1.Signers, now.Add(time.Minute), "a", now.Add(time.Minute), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartLeased(ctx, c2.ID, w1.Signers, now.Add(time.Minute), "b", now.Add(time.Minute), 1); !errors.Is(err, store.ErrSignerBusy) {
		t.Fatalf("start past the bound: %v", err)
	}
	if got, _ := s.GetCeremony(ctx, c2.ID); got.State != store.CeremonyWaiting {
		t.Fatalf("refused start left the ceremony %s", got.State)
	}
	if _, err := s.StartLeased(ctx, c2.ID, w1.Signers, now.Add(time.Minute), "b", now.Add(time.Minute), 2); err != nil {
		t.Fatalf("start within a bound of 2: %v", err)
	}
}
