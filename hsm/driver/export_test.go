package driver

import (
	"context"
	"time"

	"github.com/sigil-wallet/sigil/internal/ecsig"
)

// SlowDown makes every signature of p's driver take at least d longer, so a
// test can kill a driver while it holds leases.
func SlowDown(p *Process, d time.Duration) { p.Driver.hsm = slowHSM{p.Driver.hsm, d} }

type slowHSM struct {
	HSM
	d time.Duration
}

func (s slowHSM) Sign(ctx context.Context, wrapped, pub, digest []byte) (ecsig.Signature, error) {
	time.Sleep(s.d)
	return s.HSM.Sign(ctx, wrapped, pub, digest)
}
