package ceremony

import (
	"context"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// fillKeyPool starts one key generation for the key pool when nothing
// else runs and every signer of the group is online: CreateWallet then
// takes a finished key instead of waiting for one.
func (o *Orchestrator) fillKeyPool(ctx context.Context, open []*store.Ceremony) (bool, error) {
	g := o.cfg.KeyPoolGroup
	target := int(o.keyPool.Load())
	if target <= 0 || len(g.Signers) == 0 || len(open) > 0 {
		return false, nil
	}
	if len(o.presence.Online(g.Signers)) < len(g.Signers) {
		return false, nil
	}
	n, err := o.store.PooledKeys(ctx, g.Threshold, g.Signers)
	if err != nil || n >= target {
		return false, err
	}
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletPooling, Threshold: g.Threshold, Signers: g.Signers}
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, KeyScheme: w.KeyScheme, WalletID: w.ID,
		State: store.CeremonyWaiting, Threshold: g.Threshold, GroupSigners: g.Signers}
	if _, _, err := o.store.CreateWallet(ctx, w, store.Work{Ceremony: c}); err != nil {
		return false, err
	}
	o.logger.InfoContext(ctx, "generating a key for the key pool", "wallet", w.ID, "pooled", n)
	o.NotifyWork()
	return true, nil
}
