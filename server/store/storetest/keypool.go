package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// addPooledKey records a key generation for the key pool and finishes it.
func addPooledKey(t *testing.T, s store.Store, signers []string) string {
	t.Helper()
	ctx := context.Background()
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletPooling, Threshold: 2, Signers: signers}
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, WalletID: w.ID, State: store.CeremonyWaiting,
		Threshold: 2, GroupSigners: signers}
	if _, _, err := s.CreateWallet(ctx, w, store.Work{Ceremony: c}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWallet(ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a pooled key being generated is visible: %v", err)
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: PubKey}}); err != nil {
		t.Fatal(err)
	}
	return w.ID
}

func poolRequest(name, externalID string) *store.Wallet {
	return &store.Wallet{ID: ids.New(ids.Wallet), ExternalID: externalID, RequestHash: []byte(name), Name: name, Backend: store.BackendMPC,
		KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating, Threshold: 2, Signers: []string{"signer-1", "signer-2", "signer-3"}}
}

// testKeyPoolAssignedOnce races CreateWallet-style assignments for fewer
// pooled keys than callers: each key goes to exactly one caller, the rest
// find the pool empty, and no pooled key is ever visible before.
func testKeyPoolAssignedOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	group := []string{"signer-1", "signer-2", "signer-3"}
	const pooled, callers = 3, 8
	for range pooled {
		addPooledKey(t, s, group)
	}
	addPooledKey(t, s, []string{"signer-1", "signer-2", "signer-9"}) // another group: never assigned here
	if n, err := s.PooledKeys(ctx, 2, group); n != pooled || err != nil {
		t.Fatalf("PooledKeys = %d, %v", n, err)
	}
	if ws, _ := s.ListWallets(ctx, store.WalletFilter{}, store.Page{Limit: 100}); len(ws) != 0 {
		t.Fatalf("pooled keys are listed: %v", ws)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		got   = map[string]string{}
		empty int
	)
	for i := range callers {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", i)
			w, created, err := s.AssignPooledWallet(ctx, poolRequest(name, ""))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrNotFound):
				empty++
			case err != nil || !created:
				t.Errorf("AssignPooledWallet(%s) = %v, %v", name, created, err)
			default:
				if other, dup := got[w.ID]; dup {
					t.Errorf("pooled key %s assigned to %s and %s", w.ID, other, name)
				}
				got[w.ID] = name
			}
		})
	}
	wg.Wait()
	if len(got) != pooled || empty != callers-pooled {
		t.Fatalf("%d assigned, %d found the pool empty; want %d and %d", len(got), empty, pooled, callers-pooled)
	}
	for id, name := range got {
		w, err := s.GetWallet(ctx, id)
		if err != nil || w.Status != store.WalletActive || w.Name != name || len(w.PublicKey) != 33 {
			t.Fatalf("assigned wallet = %+v, %v", w, err)
		}
	}
	if n, _ := s.PooledKeys(ctx, 2, group); n != 0 {
		t.Fatalf("%d pooled keys left, want 0", n)
	}
}

func testKeyPoolIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	group := []string{"signer-1", "signer-2", "signer-3"}
	addPooledKey(t, s, group)
	addPooledKey(t, s, group)
	first, created, err := s.AssignPooledWallet(ctx, poolRequest("a", "ext-a"))
	if err != nil || !created {
		t.Fatalf("first = %v, %v", created, err)
	}
	again, created, err := s.AssignPooledWallet(ctx, poolRequest("a", "ext-a"))
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("replay = %v %v, %v; want the same wallet", again, created, err)
	}
	if _, _, err := s.AssignPooledWallet(ctx, poolRequest("b", "ext-a")); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("same external id, other request: %v", err)
	}
	if n, _ := s.PooledKeys(ctx, 2, group); n != 1 {
		t.Fatalf("replays took pooled keys: %d left, want 1", n)
	}
}
