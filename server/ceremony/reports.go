package ceremony

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/internal/ecsig"
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
	switch c.Kind {
	case store.CeremonyKeygen:
		return o.keygenReportedLocked(ctx, c)
	case store.CeremonySign:
		return o.signReportedLocked(ctx, c, signer, output)
	default:
		return fmt.Errorf("ceremony %s has unknown kind %q", c.ID, c.Kind)
	}
}

// keygenReportedLocked activates the wallet once every signer reported the
// same, valid public key; any disagreement fails it, naming who said what.
func (o *Orchestrator) keygenReportedLocked(ctx context.Context, c *store.Ceremony) error {
	reports, err := o.store.Reports(ctx, c.ID)
	if err != nil {
		return err
	}
	if len(reports) < len(c.Parties) {
		return nil
	}
	byKey := map[string][]string{}
	for _, r := range reports {
		byKey[hex.EncodeToString(r.Output)] = append(byKey[hex.EncodeToString(r.Output)], r.Signer)
	}
	if len(byKey) != 1 {
		var parts []string
		for k, signers := range byKey {
			parts = append(parts, fmt.Sprintf("%s reported %s", strings.Join(signers, ", "), short(k)))
		}
		sort.Strings(parts)
		return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonyFailed,
			Reason: "key generation failed: signers disagree on the public key: " + strings.Join(parts, "; ")})
	}
	pub := reports[0].Output
	if _, err := secp256k1.ParsePubKey(pub); err != nil || len(pub) != 33 {
		return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonyFailed,
			Reason: "key generation failed: the signers reported an invalid public key"})
	}
	return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonySucceeded, PublicKey: pub})
}

// signReportedLocked marks the signature signed with the first result that
// verifies against the wallet's public key. A result that does not verify
// costs the reporting signer its place in the next quorum.
func (o *Orchestrator) signReportedLocked(ctx context.Context, c *store.Ceremony, signer string, output []byte) error {
	sg, err := o.store.GetSignature(ctx, c.SignatureID)
	if err != nil {
		return err
	}
	w, err := o.store.GetWallet(ctx, c.WalletID)
	if err != nil {
		return err
	}
	sig, err := ecsig.FromRS(output[:32], output[32:], w.PublicKey, sg.Digest)
	if err != nil || !ecsig.Verify(w.PublicKey, sg.Digest, sig) {
		o.logger.WarnContext(ctx, "signer reported a signature that does not verify", "ceremony", c.ID, "signer", signer)
		return o.failAttemptLocked(ctx, c, signer+" reported a signature that does not verify against the wallet's public key", []string{signer})
	}
	return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonySucceeded,
		R: bytes.Clone(sig.R[:]), S: bytes.Clone(sig.S[:]), RecoveryID: int(sig.V)})
}

// fail handles a signer's failure report.
func (o *Orchestrator) fail(ctx context.Context, c *store.Ceremony, signer, reason string, culprits []string, rejected bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.store.RecordReport(ctx, &store.CeremonyReport{CeremonyID: c.ID, Signer: signer, Reason: reason, Rejected: rejected}); err != nil {
		return err
	}
	if rejected && c.Kind == store.CeremonySign {
		return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonyFailed,
			Reason: fmt.Sprintf("%s refused to sign: %s", signer, reason), SignatureStatus: store.SignatureRejected})
	}
	faulty := blame(c.Parties, signer, culprits, o.presence.online(c.Parties))
	return o.failAttemptLocked(ctx, c, fmt.Sprintf("%s failed: %s", signer, reason), faulty)
}

func short(hexKey string) string {
	if len(hexKey) > 16 {
		return hexKey[:16] + "…"
	}
	return hexKey
}
