package ceremony

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// DefaultPresignPoolTotal bounds the presignatures kept across all wallets
// when Config.PresignPoolTotal is 0: thousands of wallets must not keep the
// signers presigning for ever.
const DefaultPresignPoolTotal = 1000

// ecdsaPresign is CMP presigning by a quorum, ahead of any message.
type ecdsaPresign struct{}

func (ecdsaPresign) Name() string { return "presigning" }
func (ecdsaPresign) Kind() ceremonyv1.CeremonyKind {
	return ceremonyv1.CeremonyKind_CEREMONY_KIND_PRESIGN
}
func (ecdsaPresign) Retries() bool { return false }

// Plan picks t online signers, a different quorum for each presigning (by
// its id), so the pool serves whichever signers are up later. Without t
// online it gives up at once: a pool is filled when the signers are there.
func (ecdsaPresign) Plan(env PlanEnv, c *store.Ceremony) Plan {
	if len(env.Online) < c.Threshold {
		return Plan{Fail: fmt.Sprintf("only %d of the %d signers needed are online", len(env.Online), c.Threshold)}
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(c.ID)) // an fnv hash never fails
	return Plan{Parties: rotate(env.Online, int(h.Sum32()%1024))[:c.Threshold], Deadline: env.Now.Add(env.Config.PresignTimeout)}
}

// Describe gives the signers the key the presignature is for.
func (ecdsaPresign) Describe(ctx context.Context, s Store, c *store.Ceremony, out *ceremonyv1.Ceremony) error {
	w, err := s.GetWallet(ctx, c.WalletID)
	if err != nil {
		return err
	}
	out.PublicKey = w.PublicKey
	return nil
}

func (ecdsaPresign) Output(req *ceremonyv1.CompleteCeremonyRequest) ([]byte, error) {
	out, ok := req.GetOutput().(*ceremonyv1.CompleteCeremonyRequest_Presign)
	if !ok {
		return nil, errors.New("output: a presigning ceremony reports presign")
	}
	return out.Presign.GetR(), nil
}

// Decide adds the presignature to its wallet's pool once every party
// reported the same nonce point.
func (ecdsaPresign) Decide(ctx context.Context, s Store, c *store.Ceremony, reports []*store.CeremonyReport) (*Verdict, error) {
	if len(reports) < len(c.Parties) {
		return nil, nil
	}
	for _, r := range reports[1:] {
		if !bytes.Equal(r.Output, reports[0].Output) {
			return &Verdict{Reason: "the signers disagree on the presignature"}, nil
		}
	}
	if !validPublicKey(reports[0].Output) {
		return &Verdict{Reason: "the signers reported an invalid presignature point"}, nil
	}
	w, err := s.GetWallet(ctx, c.WalletID)
	if err != nil {
		return nil, err
	}
	return &Verdict{Success: &store.CeremonyFinish{State: store.CeremonySucceeded,
		Presignature: &store.Presignature{ID: c.ID, WalletID: c.WalletID, PublicKey: w.PublicKey, Signers: c.Parties}}}, nil
}

func (ecdsaPresign) Failed(_ *store.Ceremony, reason string, _ bool) *store.CeremonyFinish {
	return &store.CeremonyFinish{State: store.CeremonyFailed, Reason: reason}
}

// fillPools starts one presigning for the wallet whose pool is shortest,
// when nothing else runs: presigning costs the signers seconds of CPU that
// signatures and key generations must not wait behind.
func (o *Orchestrator) fillPools(ctx context.Context, open []*store.Ceremony) error {
	perWallet := int(o.presignPool.Load())
	if perWallet <= 0 || len(open) > 0 {
		return nil
	}
	total, err := o.store.PoolSize(ctx)
	if err != nil || total >= o.cfg.PresignPoolTotal {
		return err
	}
	targets, err := o.store.PresignTargets(ctx, perWallet, 1)
	if err != nil || len(targets) == 0 {
		return err
	}
	w := targets[0]
	if len(o.presence.Online(w.Signers)) < w.Threshold {
		return nil
	}
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyPresign, KeyScheme: w.KeyScheme, WalletID: w.ID,
		State: store.CeremonyWaiting, Threshold: w.Threshold, GroupSigners: w.Signers}
	if err := o.store.CreatePresignCeremony(ctx, c); err != nil {
		return err
	}
	o.NotifyWork()
	return nil
}

// takePresignature returns a function that takes, for signing ceremony c,
// a presignature of its wallet whose quorum is among the given signers (nil
// when this coordinator keeps no presignature pools).
func (o *Orchestrator) takePresignature(ctx context.Context, c *store.Ceremony) func(usable []string) *store.Presignature {
	if !o.usePresigs.Load() {
		return nil
	}
	return func(usable []string) *store.Presignature {
		w, err := o.store.GetWallet(ctx, c.WalletID)
		if err != nil {
			return nil
		}
		p, err := o.store.TakePresignature(ctx, c.WalletID, w.PublicKey, usable, c.ID)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				o.logger.WarnContext(ctx, "take presignature", "ceremony", c.ID, "error", err)
			}
			return nil
		}
		o.metrics.presigUsed.Inc()
		return p
	}
}

// dropPresignatures empties the wallet's pool of what excluded signers
// hold: a signer blamed once does not get to sign through a presignature.
func (o *Orchestrator) dropPresignatures(ctx context.Context, c *store.Ceremony, excluded []string) {
	for _, s := range excluded {
		if n, err := o.store.DropPresignatures(ctx, c.WalletID, s, nil); err != nil {
			o.logger.WarnContext(ctx, "drop presignatures", "wallet", c.WalletID, "signer", s, "error", err)
		} else if n > 0 {
			o.logger.InfoContext(ctx, "presignatures dropped", "wallet", c.WalletID, "signer", s, "count", n)
		}
	}
}
