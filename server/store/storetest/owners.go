package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/sigil-wallet/sigil/server/store"
)

// testExternalIDsPerOwner: external ids are scoped to their owner. The same
// external id from two owners makes two resources, each replayed only to
// its owner, and a conflict only arises within one owner.
func testExternalIDsPerOwner(t *testing.T, s store.Store) {
	ctx := context.Background()
	create := func(owner string, hash byte) (*store.Wallet, bool, error) {
		w, work := NewWallet("order-7", hash)
		w.Owner = owner
		return s.CreateWallet(ctx, w, work)
	}
	a, created, err := create("tok_a", 1)
	if err != nil || !created {
		t.Fatalf("owner a: %v %v", created, err)
	}
	b, created, err := create("tok_b", 2) // another body: no conflict across owners
	if err != nil || !created || b.ID == a.ID {
		t.Fatalf("owner b: created=%v id=%v err=%v, want a new wallet", created, b, err)
	}
	again, created, err := create("tok_a", 1)
	if err != nil || created || again.ID != a.ID || again.ExternalID != "order-7" || again.Owner != "tok_a" {
		t.Fatalf("owner a again: created=%v wallet=%+v err=%v", created, again, err)
	}
	if _, _, err := create("tok_b", 1); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Fatalf("owner b, different body: %v, want ErrIdempotencyConflict", err)
	}
	got, err := s.GetWallet(ctx, b.ID)
	if err != nil || got.ExternalID != "order-7" || got.Owner != "tok_b" {
		t.Fatalf("read back: %+v %v", got, err)
	}
	legacy, created, err := create("", 3) // rows without an owner stay apart too
	if err != nil || !created || legacy.ExternalID != "order-7" {
		t.Fatalf("no owner: %v %+v %v", created, legacy, err)
	}

	w := mustActiveWallet(t, s)
	sign := func(owner string, hash byte) (*store.Signature, bool, error) {
		sg, work := newSignature(w.ID, "pay-1", hash)
		sg.Owner = owner
		return s.CreateSignature(ctx, sg, work)
	}
	sa, created, err := sign("tok_a", 1)
	if err != nil || !created {
		t.Fatalf("signature owner a: %v %v", created, err)
	}
	sb, created, err := sign("tok_b", 1)
	if err != nil || !created || sb.ID == sa.ID {
		t.Fatalf("signature owner b: %v %+v %v", created, sb, err)
	}
	sa2, created, err := sign("tok_a", 1)
	if err != nil || created || sa2.ID != sa.ID || sa2.ExternalID != "pay-1" {
		t.Fatalf("signature owner a again: %v %+v %v", created, sa2, err)
	}
	list, err := s.ListSignatures(ctx, store.SignatureFilter{WalletID: w.ID}, store.Page{Limit: 10})
	if err != nil || len(list) != 2 || list[0].ExternalID != "pay-1" || list[1].ExternalID != "pay-1" {
		t.Fatalf("list: %+v %v", list, err)
	}
}
