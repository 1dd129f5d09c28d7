package signer

import (
	"errors"
	"testing"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/internal/ids"
)

// A coordinator names the parent share and path a child wallet's signature
// is made with; the signer signs only when they are the ones the wallet id
// (which the guard checked against the request) stands for. Otherwise a
// request for one wallet could be signed with another wallet's key.
func TestSignPathBindsTheChildToItsParentAndPath(t *testing.T) {
	parent, other := ids.New(ids.Wallet), ids.New(ids.Wallet)
	child := ids.Child(parent, "m/0/1")
	for _, tc := range []struct {
		name string
		c    *ceremonyv1.Ceremony
		ok   bool
	}{
		{"a wallet's own key", &ceremonyv1.Ceremony{WalletId: parent}, true},
		{"the child at its path", &ceremonyv1.Ceremony{WalletId: child, ShareWalletId: parent, DerivationPath: "m/0/1"}, true},
		{"another path", &ceremonyv1.Ceremony{WalletId: child, ShareWalletId: parent, DerivationPath: "m/0/2"}, false},
		{"another parent", &ceremonyv1.Ceremony{WalletId: child, ShareWalletId: other, DerivationPath: "m/0/1"}, false},
		{"an ordinary wallet signed with a child key of another", &ceremonyv1.Ceremony{WalletId: parent, ShareWalletId: other, DerivationPath: "m/0/1"}, false},
		{"a path without a parent", &ceremonyv1.Ceremony{WalletId: parent, DerivationPath: "m/0/1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := signPath(tc.c)
			if tc.ok != (err == nil) {
				t.Fatalf("signPath: %v", err)
			}
			if err != nil && !errors.Is(err, errRejected) {
				t.Fatalf("refusal %v is not a rejection", err)
			}
		})
	}
}
