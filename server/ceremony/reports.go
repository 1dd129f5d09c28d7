package ceremony

import (
	"context"
	"fmt"

	"github.com/sigil-wallet/sigil/server/store"
)

// complete handles a signer's result. The caller has checked the signer
// is a party of the running ceremony.
func (o *Orchestrator) complete(ctx context.Context, c *store.Ceremony, signer string, output []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.store.RecordReport(ctx, &store.CeremonyReport{CeremonyID: c.ID, Signer: signer, OK: true, Output: output}); err != nil {
		return err
	}
	return o.decideLocked(ctx, c)
}

// decideLocked asks the ceremony's protocol about the results so far and
// ends the ceremony, or the attempt, when it has decided.
func (o *Orchestrator) decideLocked(ctx context.Context, c *store.Ceremony) error {
	p, err := o.cfg.Protocols.Lookup(c)
	if err != nil {
		return err
	}
	all, err := o.store.Reports(ctx, c.ID)
	if err != nil {
		return err
	}
	var ok []*store.CeremonyReport
	for _, r := range all {
		if r.OK {
			ok = append(ok, r)
		}
	}
	v, err := p.Decide(ctx, o.store, c, ok)
	switch {
	case err != nil:
		return err
	case v == nil:
		return nil
	case v.Success != nil:
		return o.finishLocked(ctx, c, v.Success)
	}
	o.logger.WarnContext(ctx, "reported results rejected", "ceremony", c.ID, "reason", v.Reason, "faulty", v.Faulty)
	return o.failAttemptLocked(ctx, c, v.Reason, v.Faulty)
}

// fail handles a signer's failure report.
func (o *Orchestrator) fail(ctx context.Context, c *store.Ceremony, signer, reason string, culprits []string, rejected bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.store.RecordReport(ctx, &store.CeremonyReport{CeremonyID: c.ID, Signer: signer, Reason: reason, Rejected: rejected}); err != nil {
		return err
	}
	if rejected {
		p, err := o.cfg.Protocols.Lookup(c)
		if err != nil {
			return err
		}
		return o.finishLocked(ctx, c, p.Failed(c, fmt.Sprintf("%s refused to sign: %s", signer, reason), true))
	}
	faulty := blame(c.Parties, signer, culprits, o.presence.Online(c.Parties))
	return o.failAttemptLocked(ctx, c, fmt.Sprintf("%s failed: %s", signer, reason), faulty)
}

func short(hexKey string) string {
	if len(hexKey) > 16 {
		return hexKey[:16] + "…"
	}
	return hexKey
}
