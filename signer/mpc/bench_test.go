package mpc_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// BenchmarkInProcessSign measures a full CMP signing ceremony with every
// signer in this process over a ChanNetwork, so it is CPU cost only (the
// signers share the machine's cores); relay latency comes on top.
func BenchmarkInProcessSign(b *testing.B) {
	for _, shape := range []struct{ n, t int }{{3, 2}, {5, 3}} {
		b.Run(fmt.Sprintf("%dof%d", shape.t, shape.n), func(b *testing.B) {
			cfgs := mpctest.Configs(b, shape.n, shape.t)
			signers := mpctest.IDs(shape.n)[:shape.t]
			var r mpc.Runner
			b.ResetTimer()
			for i := range b.N {
				digest := sha256.Sum256(fmt.Appendf(nil, "bench %d", i))
				for id, res := range signAll(context.Background(), &r, cfgs, signers, digest[:], nil) {
					if res.err != nil {
						b.Fatalf("%s: %v", id, res.err)
					}
				}
			}
		})
	}
}

// BenchmarkInProcessKeygen measures a 2-of-3 CMP keygen, all parties in
// this process. Expect tens of seconds per iteration.
func BenchmarkInProcessKeygen(b *testing.B) {
	for range b.N {
		if _, err := mpctest.Generate(context.Background(), 3, 2); err != nil {
			b.Fatal(err)
		}
	}
}
