package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// schemeTests cover key schemes beyond ECDSA and BIP-32 child wallets.
var schemeTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"SchemeKeygenStoresKeyAndChainCode", testSchemeKeygen},
	{"ChildWallets", testChildWallets},
	{"RawMessageSignature", testRawMessageSignature},
}

// testSchemeKeygen: a Schnorr key generation activates its wallet with a
// 32-byte key and the chain code; a 33-byte key is refused for it.
func testSchemeKeygen(t *testing.T, s store.Store) {
	ctx := context.Background()
	w, work := NewWallet("", 1)
	w.KeyScheme, work.Ceremony.KeyScheme = store.KeySchemeSchnorr, store.KeySchemeSchnorr
	if _, _, err := s.CreateWallet(ctx, w, work); err != nil {
		t.Fatal(err)
	}
	chain := bytes.Repeat([]byte{9}, 32)
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: work.Ceremony.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: PubKey}}); err == nil {
		t.Fatal("a 33-byte key activated a Schnorr wallet")
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: work.Ceremony.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: PubKey[1:], ChainCode: chain}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetWallet(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.WalletActive || !bytes.Equal(got.PublicKey, PubKey[1:]) || !bytes.Equal(got.ChainCode, chain) || got.KeyScheme != store.KeySchemeSchnorr {
		t.Fatalf("wallet = %+v", got)
	}
}

func newChild(parent *store.Wallet, path string) *store.Wallet {
	return &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{2}, Backend: parent.Backend, KeyScheme: parent.KeyScheme,
		Status: store.WalletActive, PublicKey: PubKey, Threshold: parent.Threshold, Signers: parent.Signers,
		ParentWalletID: parent.ID, DerivationPath: path}
}

// testChildWallets: children are created active with no work, only under
// an active parent that is no child, and list under their parent.
func testChildWallets(t *testing.T, s store.Store) {
	ctx := context.Background()
	creating := mustCreateWallet(t, s, "")
	if _, _, err := s.CreateWallet(ctx, newChild(creating, "m/0"), store.Work{}); !errors.Is(err, store.ErrWalletNotActive) {
		t.Fatalf("child of a creating wallet: %v", err)
	}
	if _, _, err := s.CreateWallet(ctx, newChild(&store.Wallet{ID: ids.New(ids.Wallet)}, "m/0"), store.Work{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("child of a missing wallet: %v", err)
	}
	parent := mustActiveWallet(t, s)
	other := mustActiveWallet(t, s)
	var kids []string
	for _, p := range []string{"m/0", "m/0/1"} {
		c, created, err := s.CreateWallet(ctx, newChild(parent, p), store.Work{})
		if err != nil || !created {
			t.Fatalf("child %s: %v", p, err)
		}
		kids = append(kids, c.ID)
	}
	if _, _, err := s.CreateWallet(ctx, newChild(other, "m/5"), store.Work{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateWallet(ctx, newChild(&store.Wallet{ID: kids[0], Backend: store.BackendMPC}, "m/1"), store.Work{}); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("grandchild: %v", err)
	}
	got, err := s.ListWallets(ctx, store.WalletFilter{ParentWalletID: parent.ID}, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != kids[0] || got[1].ID != kids[1] || got[1].DerivationPath != "m/0/1" || got[1].ParentWalletID != parent.ID {
		t.Fatalf("children = %+v", got)
	}
}

// testRawMessageSignature: message bytes (NUL included) round-trip with
// an empty digest.
func testRawMessageSignature(t *testing.T, s store.Store) {
	ctx := context.Background()
	w := mustActiveWallet(t, s)
	msg := []byte{0, 1, 2, 0xff, 0}
	sg := &store.Signature{ID: ids.New(ids.Signature), RequestHash: []byte{1}, WalletID: w.ID, Kind: store.KindRaw,
		RawMessage: msg, Status: store.SignaturePending}
	work := store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: w.ID, SignatureID: sg.ID, State: store.JobQueued}}
	if _, _, err := s.CreateSignature(ctx, sg, work); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSignature(ctx, sg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != store.KindRaw || !bytes.Equal(got.RawMessage, msg) || len(got.Digest) != 0 || got.KeyScheme != store.KeySchemeSecp256k1 {
		t.Fatalf("signature = %+v", got)
	}
}
