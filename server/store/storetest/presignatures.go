package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// addPresignature runs a presigning ceremony of w by quorum to success.
func addPresignature(t *testing.T, s store.Store, w *store.Wallet, quorum []string, pub []byte) string {
	t.Helper()
	ctx := context.Background()
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyPresign, KeyScheme: store.KeySchemeSecp256k1, WalletID: w.ID,
		State: store.CeremonyWaiting, Threshold: w.Threshold, GroupSigners: w.Signers}
	if err := s.CreatePresignCeremony(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCeremony(ctx, c.ID, quorum, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonySucceeded,
		Presignature: &store.Presignature{ID: c.ID, WalletID: w.ID, PublicKey: pub, Signers: quorum}}); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func testPresignaturePool(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := mustActiveWallet(t, s)
	targets, err := s.PresignTargets(ctx, 2, 10)
	if err != nil || len(targets) != 1 || targets[0].ID != w.ID {
		t.Fatalf("PresignTargets of an empty pool = %v, %v", targets, err)
	}
	first := addPresignature(t, s, w, []string{"signer-3", "signer-1"}, PubKey)
	if n, _ := s.PoolSize(ctx); n != 1 {
		t.Fatalf("PoolSize = %d, want 1", n)
	}
	if targets, _ := s.PresignTargets(ctx, 1, 10); len(targets) != 0 {
		t.Fatalf("a full pool is a target: %v", targets)
	}
	c := signCeremonyOf(t, s, w)
	if _, err := s.TakePresignature(ctx, w.ID, PubKey, []string{"signer-1", "signer-2"}, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("took a presignature whose quorum is not usable: %v", err)
	}
	got, err := s.TakePresignature(ctx, w.ID, PubKey, []string{"signer-1", "signer-2", "signer-3"}, c.ID)
	if err != nil || got.ID != first || got.Signers[0] != "signer-1" || got.Signers[1] != "signer-3" {
		t.Fatalf("TakePresignature = %+v, %v", got, err)
	}
	if cer, _ := s.GetCeremony(ctx, c.ID); cer.PresignatureID != first {
		t.Fatalf("the signing ceremony does not record its presignature: %q", cer.PresignatureID)
	}
	if _, err := s.TakePresignature(ctx, w.ID, PubKey, []string{"signer-1", "signer-2", "signer-3"}, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a presignature was taken twice: %v", err)
	}

	// A quorum member excluded, or another key: dropped, never taken.
	addPresignature(t, s, w, []string{"signer-1", "signer-2"}, PubKey)
	addPresignature(t, s, w, []string{"signer-2", "signer-3"}, PubKey)
	other := addPresignature(t, s, w, []string{"signer-2", "signer-3"}, []byte("another key"))
	if n, err := s.DropPresignatures(ctx, w.ID, "signer-1", nil); n != 1 || err != nil {
		t.Fatalf("DropPresignatures(signer-1) = %d, %v", n, err)
	}
	if n, err := s.DropPresignatures(ctx, w.ID, "", PubKey); n != 1 || err != nil {
		t.Fatalf("DropPresignatures(other key) = %d, %v", n, err)
	}
	if n, _ := s.PoolSize(ctx); n != 1 {
		t.Fatalf("PoolSize after drops = %d, want 1", n)
	}
	_ = other
}

// testPresignatureTakenOnce races signing ceremonies for one presignature:
// exactly one gets it.
func testPresignatureTakenOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := mustActiveWallet(t, s)
	addPresignature(t, s, w, []string{"signer-1", "signer-2"}, PubKey)
	const racers = 6
	var cers []*store.Ceremony
	for range racers {
		cers = append(cers, signCeremonyOf(t, s, w))
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for _, c := range cers {
		wg.Go(func() {
			_, err := s.TakePresignature(ctx, w.ID, PubKey, w.Signers, c.ID)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("TakePresignature: %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d ceremonies took the one presignature", won)
	}
}

// signCeremonyOf records a signature request of w and its waiting signing
// ceremony.
func signCeremonyOf(t *testing.T, s store.Store, w *store.Wallet) *store.Ceremony {
	t.Helper()
	sg, _ := newSignature(w.ID, "", 4)
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonySign, WalletID: w.ID, SignatureID: sg.ID,
		State: store.CeremonyWaiting, Threshold: 2, GroupSigners: w.Signers}
	if _, _, err := s.CreateSignature(context.Background(), sg, store.Work{Ceremony: c}); err != nil {
		t.Fatal(err)
	}
	return c
}
