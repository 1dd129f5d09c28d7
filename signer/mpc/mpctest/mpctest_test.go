package mpctest_test

import (
	"testing"

	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// TestFixtures loads (or, the first time, generates) the committed fixtures.
func TestFixtures(t *testing.T) {
	for _, tc := range []struct{ n, threshold int }{{3, 2}, {5, 3}} {
		cfgs := mpctest.Configs(t, tc.n, tc.threshold)
		if len(cfgs) != tc.n {
			t.Fatalf("%d-of-%d: got %d shares", tc.threshold, tc.n, len(cfgs))
		}
		for id, cfg := range cfgs {
			if _, err := mpc.PublicKey(cfg); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	}
}
