package ceremony

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/server/store"
)

// ecdsaKeygen is CMP key generation by all n signers of the group.
type ecdsaKeygen struct{}

func (ecdsaKeygen) Name() string { return "key generation" }
func (ecdsaKeygen) Kind() ceremonyv1.CeremonyKind {
	return ceremonyv1.CeremonyKind_CEREMONY_KIND_KEYGEN
}
func (ecdsaKeygen) Retries() bool { return false }

// Plan waits for every signer of the group, up to the key generation
// timeout counted from the request (or from leaving the queue); once
// started, the key generation has the timeout again to finish.
func (ecdsaKeygen) Plan(env PlanEnv, c *store.Ceremony) Plan {
	if len(env.Online) == len(c.GroupSigners) {
		return Plan{Parties: c.GroupSigners, Deadline: env.Now.Add(env.Config.KeygenTimeout)}
	}
	if env.Now.After(env.Since.Add(env.Config.KeygenTimeout)) {
		missing := without(c.GroupSigners, env.Online)
		return Plan{Fail: fmt.Sprintf("key generation needs all %d signers, but %s did not join within %s",
			len(c.GroupSigners), strings.Join(missing, ", "), env.Config.KeygenTimeout)}
	}
	return Plan{}
}

func (ecdsaKeygen) Describe(context.Context, Store, *store.Ceremony, *ceremonyv1.Ceremony) error {
	return nil
}

func (ecdsaKeygen) Output(req *ceremonyv1.CompleteCeremonyRequest) ([]byte, error) {
	out, ok := req.GetOutput().(*ceremonyv1.CompleteCeremonyRequest_Keygen)
	if !ok {
		return nil, errors.New("output: a key generation reports keygen")
	}
	return out.Keygen.GetPublicKey(), nil
}

// Decide activates the wallet once every party reported the same, valid
// public key; any disagreement fails it, naming who said what.
func (ecdsaKeygen) Decide(_ context.Context, _ Store, c *store.Ceremony, reports []*store.CeremonyReport) (*Verdict, error) {
	if len(reports) < len(c.Parties) {
		return nil, nil
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
		return &Verdict{Reason: "signers disagree on the public key: " + strings.Join(parts, "; ")}, nil
	}
	pub := reports[0].Output
	if !validPublicKey(pub) {
		return &Verdict{Reason: "the signers reported an invalid public key"}, nil
	}
	return &Verdict{Success: &store.CeremonyFinish{State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: bytes.Clone(pub)}}}, nil
}

func validPublicKey(pub []byte) bool {
	_, err := secp256k1.ParsePubKey(pub)
	return err == nil && len(pub) == 33
}

func (ecdsaKeygen) Failed(_ *store.Ceremony, reason string, _ bool) *store.CeremonyFinish {
	return &store.CeremonyFinish{State: store.CeremonyFailed, Reason: reason,
		Wallet: &store.WalletOutcome{Status: store.WalletFailed, Reason: reason}}
}

// ecdsaSign is CMP signing by a quorum of t signers.
type ecdsaSign struct{}

func (ecdsaSign) Name() string                  { return "signing" }
func (ecdsaSign) Kind() ceremonyv1.CeremonyKind { return ceremonyv1.CeremonyKind_CEREMONY_KIND_SIGN }
func (ecdsaSign) Retries() bool                 { return true }

// Plan picks t online signers not excluded by an earlier attempt, and gives
// up when no quorum came within the quorum wait.
func (ecdsaSign) Plan(env PlanEnv, c *store.Ceremony) Plan {
	candidates := without(env.Online, c.Excluded)
	// The first attempt signs in one round when a presignature of an
	// online quorum is ready; a retry runs the full protocol.
	if c.Attempt == 0 && env.Presignature != nil && len(candidates) >= c.Threshold {
		if p := env.Presignature(candidates); p != nil {
			return Plan{Parties: p.Signers, Deadline: env.Now.Add(env.Config.SignTimeout), Presignature: p.ID}
		}
	}
	if len(candidates) >= c.Threshold {
		// Each attempt starts the choice at another signer, so a retry
		// tries another quorum even when nobody could be blamed.
		return Plan{Parties: rotate(candidates, c.Attempt)[:c.Threshold], Deadline: env.Now.Add(env.Config.SignTimeout)}
	}
	if env.Now.Sub(env.Since) > env.Config.QuorumWait {
		reason := fmt.Sprintf("cannot sign: %d of the wallet's %d signers are online (%s) and %d are needed",
			len(env.Online), len(c.GroupSigners), listOrNone(env.Online), c.Threshold)
		if len(c.Excluded) > 0 {
			reason += fmt.Sprintf("; %s failed an earlier attempt", strings.Join(c.Excluded, ", "))
		}
		return Plan{Fail: reason}
	}
	return Plan{}
}

// Describe gives signers what they need to check a signature request on
// their own: the digest, what it was made from, and the wallet's key.
func (ecdsaSign) Describe(ctx context.Context, s Store, c *store.Ceremony, out *ceremonyv1.Ceremony) error {
	return describeSignature(ctx, s, c, out, func(sg *store.Signature, w *store.Wallet) error {
		switch sg.Kind {
		case store.KindHash:
			out.SignatureKind, out.Payload = walletv1.SignatureKind_SIGNATURE_KIND_HASH, sg.Hash
		case store.KindEIP191:
			out.SignatureKind, out.Payload = walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE, []byte(sg.Message)
		default:
			return fmt.Errorf("signature %s: kind %q is not signed by key scheme %q", sg.ID, sg.Kind, w.KeyScheme)
		}
		return nil
	})
}

// describeSignature fills what every signing ceremony gives its signers,
// whatever the scheme: the wallet's key (and, for a child wallet, the
// parent and path its signers derive along), the digest, and the
// application's signed request and external id, which the signers check
// on their own; payload sets the kind and payload the scheme signs.
func describeSignature(ctx context.Context, s Store, c *store.Ceremony, out *ceremonyv1.Ceremony,
	payload func(sg *store.Signature, w *store.Wallet) error) error {
	sg, err := s.GetSignature(ctx, c.SignatureID)
	if err != nil {
		return err
	}
	w, err := s.GetWallet(ctx, c.WalletID)
	if err != nil {
		return err
	}
	out.Digest, out.PublicKey = sg.Digest, w.PublicKey
	out.ShareWalletId, out.DerivationPath = w.ParentWalletID, w.DerivationPath
	out.SignedRequest, out.ExternalId = sg.SignedRequest, sg.ExternalID
	return payload(sg, w)
}

func (ecdsaSign) Output(req *ceremonyv1.CompleteCeremonyRequest) ([]byte, error) {
	out, ok := req.GetOutput().(*ceremonyv1.CompleteCeremonyRequest_Sign)
	if !ok {
		return nil, errors.New("output: a signing ceremony reports sign")
	}
	return out.Sign.GetSignature(), nil
}

// Decide marks the signature signed with the first result that verifies
// against the wallet's public key. A result that does not verify costs the
// reporting signer its place in the next quorum.
func (ecdsaSign) Decide(ctx context.Context, s Store, c *store.Ceremony, reports []*store.CeremonyReport) (*Verdict, error) {
	if len(reports) == 0 {
		return nil, nil
	}
	sg, err := s.GetSignature(ctx, c.SignatureID)
	if err != nil {
		return nil, err
	}
	w, err := s.GetWallet(ctx, c.WalletID)
	if err != nil {
		return nil, err
	}
	// The first result decides: the ceremony ends with it either way.
	r := reports[0]
	sig, ok := verifyRS(r.Output, w.PublicKey, sg.Digest)
	if !ok {
		return &Verdict{Reason: r.Signer + " reported a signature that does not verify against the wallet's public key",
			Faulty: []string{r.Signer}}, nil
	}
	return &Verdict{Success: &store.CeremonyFinish{State: store.CeremonySucceeded, Signature: &store.SignatureOutcome{
		Status: store.SignatureSigned, R: bytes.Clone(sig.R[:]), S: bytes.Clone(sig.S[:]), RecoveryID: int(sig.V)}}}, nil
}

// verifyRS checks r||s against the wallet's key and digest and returns it
// normalised (S low) with its recovery id.
func verifyRS(rs, pub, digest []byte) (ecsig.Signature, bool) {
	if len(rs) != 64 {
		return ecsig.Signature{}, false
	}
	sig, err := ecsig.FromRS(rs[:32], rs[32:], pub, digest)
	return sig, err == nil && ecsig.Verify(pub, digest, sig)
}

func (ecdsaSign) Failed(_ *store.Ceremony, reason string, rejected bool) *store.CeremonyFinish {
	status := store.SignatureFailed
	if rejected {
		status = store.SignatureRejected
	}
	return &store.CeremonyFinish{State: store.CeremonyFailed, Reason: reason,
		Signature: &store.SignatureOutcome{Status: status, Reason: reason}}
}
