// Package storetest is the conformance suite every implementation of the
// coordinator's store must pass. store's own tests run it against SQLite and
// PostgreSQL; a new backend runs the same suite.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// NewFunc returns a fresh, empty, migrated store for one test.
type NewFunc func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, newStore NewFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"TokenRoundTrip", testTokenRoundTrip},
		{"TokenListRevoke", testTokenListRevoke},
		{"WalletCreateGet", testWalletCreateGet},
		{"WalletIdempotency", testWalletIdempotency},
		{"WalletIdempotencyConcurrent", testWalletIdempotencyConcurrent},
		{"ExternalIDsPerOwner", testExternalIDsPerOwner},
		{"WalletListPages", testWalletListPages},
		{"WalletOutcomes", testWalletOutcomes},
		{"SignatureNeedsActiveWallet", testSignatureNeedsActiveWallet},
		{"SignatureCreateListIdempotency", testSignatureCreateList},
		{"WorkIsExactlyOne", testWorkIsExactlyOne},
		{"CeremonyKeygenLifecycle", testCeremonyKeygenLifecycle},
		{"CeremonyKeygenFailure", testCeremonyKeygenFailure},
		{"CeremonySignRetryThenSucceed", testCeremonySignRetryThenSucceed},
		{"CeremonySignRejected", testCeremonySignRejected},
		{"RelayMailbox", testRelayMailbox},
		{"RelayQuota", testRelayQuota},
		{"CeremonyLeases", testCeremonyLeases},
		{"CeremonyLeaseRelease", testCeremonyLeaseRelease},
		{"SignerPresence", testSignerPresence},
		{"CeremonyStartBound", testCeremonyStartBound},
		{"PresignaturePool", testPresignaturePool},
		{"PresignatureTakenOnce", testPresignatureTakenOnce},
		{"KeyPoolAssignedOnce", testKeyPoolAssignedOnce},
		{"KeyPoolIdempotency", testKeyPoolIdempotency},
	}
	tests = append(tests, jobTests...)
	tests = append(tests, backupTests...)
	tests = append(tests, schemeTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// NewWallet returns a creating MPC wallet and its keygen ceremony, as the
// wallet API records them.
func NewWallet(externalID string, hash byte) (*store.Wallet, store.Work) {
	w := &store.Wallet{
		ID: ids.New(ids.Wallet), ExternalID: externalID, RequestHash: []byte{hash},
		Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating,
		Threshold: 2, Signers: []string{"signer-1", "signer-2", "signer-3"},
	}
	c := &store.Ceremony{
		ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, WalletID: w.ID, State: store.CeremonyWaiting,
		Threshold: 2, GroupSigners: w.Signers,
	}
	return w, store.Work{Ceremony: c}
}

// PubKey is a valid compressed secp256k1 public key (the generator point)
// for tests that exercise storage and the API layer, not a backend.
var PubKey = []byte{
	0x02, 0x79, 0xbe, 0x66, 0x7e, 0xf9, 0xdc, 0xbb, 0xac, 0x55, 0xa0, 0x62, 0x95, 0xce, 0x87, 0x0b, 0x07,
	0x02, 0x9b, 0xfc, 0xdb, 0x2d, 0xce, 0x28, 0xd9, 0x59, 0xf2, 0x81, 0x5b, 0x16, 0xf8, 0x17, 0x98,
}

func mustCreateWallet(t *testing.T, s store.Store, externalID string) *store.Wallet {
	t.Helper()
	w, work := NewWallet(externalID, 1)
	got, created, err := s.CreateWallet(context.Background(), w, work)
	if err != nil || !created {
		t.Fatalf("CreateWallet: created=%v err=%v", created, err)
	}
	return got
}

func mustActiveWallet(t *testing.T, s store.Store) *store.Wallet {
	t.Helper()
	w := mustCreateWallet(t, s, "")
	if err := s.ActivateWallet(context.Background(), w.ID, PubKey); err != nil {
		t.Fatalf("ActivateWallet: %v", err)
	}
	return w
}

func newSignature(walletID, externalID string, hash byte) (*store.Signature, store.Work) {
	sg := &store.Signature{
		ID: ids.New(ids.Signature), ExternalID: externalID, RequestHash: []byte{hash}, WalletID: walletID,
		Kind: store.KindHash, Hash: bytes.Repeat([]byte{hash}, 32), Digest: bytes.Repeat([]byte{hash}, 32),
		Status: store.SignaturePending,
	}
	return sg, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: walletID, SignatureID: sg.ID, State: store.JobQueued}}
}

func testTokenRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	tok := &store.Token{ID: ids.New(ids.Token), Hash: bytes.Repeat([]byte{7}, 32), Scopes: []string{"wallets:read", "admin"}, Description: "ci"}
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	got, err := s.TokenByHash(ctx, tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || len(got.Scopes) != 2 || got.Scopes[1] != "admin" || got.Description != "ci" || got.RevokedAt != nil {
		t.Fatalf("token = %+v", got)
	}
	if _, err := s.TokenByHash(ctx, bytes.Repeat([]byte{8}, 32)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: err = %v, want ErrNotFound", err)
	}
	dup := &store.Token{ID: ids.New(ids.Token), Hash: tok.Hash, Scopes: []string{"admin"}}
	if err := s.CreateToken(ctx, dup); err == nil {
		t.Fatal("second token with the same hash was accepted")
	}
}

func testTokenListRevoke(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := &store.Token{ID: ids.New(ids.Token), Hash: bytes.Repeat([]byte{1}, 32), Scopes: []string{"wallets:read"}, Description: "a"}
	b := &store.Token{ID: ids.New(ids.Token), Hash: bytes.Repeat([]byte{2}, 32), Scopes: []string{"admin"}, Description: "b",
		CreatedAt: time.Now().Add(time.Second)}
	for _, tok := range []*store.Token{a, b} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	revoked, err := s.RevokeToken(ctx, a.ID)
	if err != nil || revoked.RevokedAt == nil || revoked.ID != a.ID {
		t.Fatalf("revoke: %+v %v", revoked, err)
	}
	again, err := s.RevokeToken(ctx, a.ID)
	if err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
		t.Fatalf("revoking twice changed the time: %+v %v", again, err)
	}
	if _, err := s.RevokeToken(ctx, ids.New(ids.Token)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}
	got, err := s.TokenByHash(ctx, a.Hash)
	if err != nil || got.RevokedAt == nil {
		t.Fatalf("revoked token read back: %+v %v", got, err)
	}
	list, err := s.ListTokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != a.ID || list[0].RevokedAt == nil || list[1].ID != b.ID || list[1].RevokedAt != nil ||
		list[1].Description != "b" || list[1].Scopes[0] != "admin" {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func testWalletCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := mustCreateWallet(t, s, "")
	got, err := s.GetWallet(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.WalletCreating || got.Backend != store.BackendMPC || got.Threshold != 2 ||
		len(got.Signers) != 3 || got.Signers[2] != "signer-3" || got.PublicKey != nil || got.CreatedAt.IsZero() {
		t.Fatalf("wallet = %+v", got)
	}
	if _, err := s.GetWallet(ctx, ids.New(ids.Wallet)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown wallet: err = %v, want ErrNotFound", err)
	}
}

func testWalletIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	w1, work1 := NewWallet("order-1", 1)
	first, created, err := s.CreateWallet(ctx, w1, work1)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	w2, work2 := NewWallet("order-1", 1)
	again, created, err := s.CreateWallet(ctx, w2, work2)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("repeat: created=%v id=%v err=%v, want existing %s", created, again, err, first.ID)
	}
	w3, work3 := NewWallet("order-1", 2)
	if _, _, err := s.CreateWallet(ctx, w3, work3); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("different body: err = %v, want ErrIdempotencyConflict", err)
	}
	all, err := s.ListWallets(ctx, store.WalletFilter{}, store.Page{Limit: 10})
	if err != nil || len(all) != 1 {
		t.Fatalf("list after repeats: %d wallets, err %v; want 1", len(all), err)
	}
}

func testWalletIdempotencyConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	idsSeen := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, work := NewWallet("race", 1)
			got, _, err := s.CreateWallet(ctx, w, work)
			if err != nil {
				t.Errorf("CreateWallet: %v", err)
				return
			}
			idsSeen <- got.ID
		}()
	}
	wg.Wait()
	close(idsSeen)
	var first string
	for id := range idsSeen {
		if first == "" {
			first = id
		}
		if id != first {
			t.Fatalf("concurrent creates with one external id returned %s and %s", first, id)
		}
	}
}

func testWalletListPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	var want []string
	for range 7 {
		want = append(want, mustCreateWallet(t, s, "").ID)
	}
	if err := s.FailWallet(ctx, want[3], "test"); err != nil {
		t.Fatal(err)
	}
	var got []string
	var after int64
	for {
		page, err := s.ListWallets(ctx, store.WalletFilter{}, store.Page{AfterSeq: after, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range page {
			got = append(got, w.ID)
		}
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if len(got) != len(want) {
		t.Fatalf("paged %d wallets, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("page order: got %v, want %v", got, want)
		}
	}
	failed, err := s.ListWallets(ctx, store.WalletFilter{Status: store.WalletFailed}, store.Page{Limit: 10})
	if err != nil || len(failed) != 1 || failed[0].ID != want[3] || failed[0].FailureReason != "test" {
		t.Fatalf("status filter: %v, %v", failed, err)
	}
}

func testWalletOutcomes(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := mustCreateWallet(t, s, "")
	if err := s.ActivateWallet(ctx, w.ID, PubKey[:10]); err == nil {
		t.Fatal("short public key accepted")
	}
	if err := s.ActivateWallet(ctx, w.ID, PubKey); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetWallet(ctx, w.ID)
	if got.Status != store.WalletActive || !bytes.Equal(got.PublicKey, PubKey) {
		t.Fatalf("after activate: %+v", got)
	}
	// Neither a second activation nor a late failure changes an active wallet.
	if err := s.ActivateWallet(ctx, w.ID, PubKey); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("second activate: %v, want ErrStateConflict", err)
	}
	if err := s.FailWallet(ctx, w.ID, "late"); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("fail after activate: %v, want ErrStateConflict", err)
	}
	if err := s.FailWallet(ctx, ids.New(ids.Wallet), "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("fail unknown: %v, want ErrNotFound", err)
	}
}

func testSignatureNeedsActiveWallet(t *testing.T, s store.Store) {
	ctx := context.Background()
	creating := mustCreateWallet(t, s, "")
	sg, work := newSignature(creating.ID, "", 1)
	if _, _, err := s.CreateSignature(ctx, sg, work); !errors.Is(err, store.ErrWalletNotActive) {
		t.Fatalf("creating wallet: err = %v, want ErrWalletNotActive", err)
	}
	sg, work = newSignature(ids.New(ids.Wallet), "", 1)
	if _, _, err := s.CreateSignature(ctx, sg, work); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown wallet: err = %v, want ErrNotFound", err)
	}
	// Nothing was half-written by the refused requests.
	all, err := s.ListSignatures(ctx, store.SignatureFilter{}, store.Page{Limit: 10})
	if err != nil || len(all) != 0 {
		t.Fatalf("refused requests left %d rows (err %v)", len(all), err)
	}
}

func testSignatureCreateList(t *testing.T, s store.Store) {
	ctx := context.Background()
	w1, w2 := mustActiveWallet(t, s), mustActiveWallet(t, s)
	var mine []string
	for i := range 5 {
		wid := w1.ID
		if i%2 == 1 {
			wid = w2.ID
		}
		sg, work := newSignature(wid, "", byte(i))
		got, created, err := s.CreateSignature(ctx, sg, work)
		if err != nil || !created {
			t.Fatalf("CreateSignature: %v", err)
		}
		if wid == w1.ID {
			mine = append(mine, got.ID)
		}
	}
	page, err := s.ListSignatures(ctx, store.SignatureFilter{WalletID: w1.ID}, store.Page{Limit: 100})
	if err != nil || len(page) != len(mine) {
		t.Fatalf("filtered list: %d, err %v; want %d", len(page), err, len(mine))
	}
	for i, sg := range page {
		if sg.ID != mine[i] || sg.Status != store.SignaturePending || len(sg.Digest) != 32 {
			t.Fatalf("row %d = %+v", i, sg)
		}
	}
	got, err := s.GetSignature(ctx, mine[0])
	if err != nil || got.WalletID != w1.ID || got.Kind != store.KindHash {
		t.Fatalf("GetSignature: %+v, %v", got, err)
	}
	if _, err := s.GetSignature(ctx, ids.New(ids.Signature)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown signature: %v", err)
	}

	a, wa := newSignature(w1.ID, "pay-1", 9)
	first, _, err := s.CreateSignature(ctx, a, wa)
	if err != nil {
		t.Fatal(err)
	}
	b, wb := newSignature(w1.ID, "pay-1", 9)
	again, created, err := s.CreateSignature(ctx, b, wb)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("repeat: %v %v %v", again, created, err)
	}
	c, wc := newSignature(w1.ID, "pay-1", 10)
	if _, _, err := s.CreateSignature(ctx, c, wc); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("different body: %v", err)
	}
}

func testWorkIsExactlyOne(t *testing.T, s store.Store) {
	ctx := context.Background()
	w, work := NewWallet("", 1)
	if _, _, err := s.CreateWallet(ctx, w, store.Work{}); err == nil {
		t.Fatal("wallet without work accepted")
	}
	work.Job = &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued}
	if _, _, err := s.CreateWallet(ctx, w, work); err == nil {
		t.Fatal("wallet with both a ceremony and a job accepted")
	}
	if _, err := s.GetWallet(ctx, w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused wallet was written: %v", err)
	}
}
