package ceremony

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"filippo.io/edwards25519"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/bip32"
	"github.com/sigil-wallet/sigil/server/store"
)

// registerSchemes adds the protocols of every key scheme beyond CMP
// ECDSA, and wraps ECDSA's key generation so its keys carry their BIP-32
// chain code (every signing protocol tells signers a child wallet's parent
// and path: see describeSignature). Key generation plans, waits
// and fails alike for every scheme; what differs is the key checked, and
// for signing what signers are told and how the result verifies.
func registerSchemes(r *Registry) {
	r.Register(store.KeySchemeSecp256k1, store.CeremonyKeygen, chainKeygen{scheme: store.KeySchemeSecp256k1, valid: validPublicKey})
	r.Register(store.KeySchemeSchnorr, store.CeremonyKeygen, chainKeygen{scheme: store.KeySchemeSchnorr, valid: validXOnly})
	r.Register(store.KeySchemeSchnorr, store.CeremonySign, schemeSign{verify: verifyBIP340})
	r.Register(store.KeySchemeEd25519, store.CeremonyKeygen, chainKeygen{scheme: store.KeySchemeEd25519, valid: validEd25519})
	r.Register(store.KeySchemeEd25519, store.CeremonySign, schemeSign{verify: verifyEd25519})
}

// chainKeygen is key generation by all n signers of a key of scheme, whose
// reports may carry the key's BIP-32 chain code.
type chainKeygen struct {
	ecdsaKeygen // plan, describe and failure are the same for every scheme
	scheme      string
	valid       func(pub []byte) bool
}

// Output is the public key followed by the chain code, if any.
func (k chainKeygen) Output(req *ceremonyv1.CompleteCeremonyRequest) ([]byte, error) {
	out, ok := req.GetOutput().(*ceremonyv1.CompleteCeremonyRequest_Keygen)
	if !ok {
		return nil, fmt.Errorf("output: a key generation reports keygen")
	}
	pub, chain := out.Keygen.GetPublicKey(), out.Keygen.GetChainCode()
	if n := store.PublicKeyLen(k.scheme); len(pub) != n {
		return nil, fmt.Errorf("output: a %s key is %d bytes, not %d", k.scheme, n, len(pub))
	}
	if len(chain) != 0 && len(chain) != bip32.ChainCodeLen {
		return nil, fmt.Errorf("output: a chain code is %d bytes, not %d", bip32.ChainCodeLen, len(chain))
	}
	return append(bytes.Clone(pub), chain...), nil
}

// Decide activates the wallet once every party reported the same valid
// key and no two chain codes differ (a signer that restarted after storing
// its share reports the key alone).
func (k chainKeygen) Decide(_ context.Context, _ Store, c *store.Ceremony, reports []*store.CeremonyReport) (*Verdict, error) {
	if len(reports) < len(c.Parties) {
		return nil, nil
	}
	n := store.PublicKeyLen(k.scheme)
	byKey := map[string][]string{}
	var chain []byte
	for _, r := range reports {
		if len(r.Output) < n {
			return &Verdict{Reason: r.Signer + " reported no public key", Faulty: []string{r.Signer}}, nil
		}
		key := hex.EncodeToString(r.Output[:n])
		byKey[key] = append(byKey[key], r.Signer)
		if cc := r.Output[n:]; len(cc) > 0 {
			if chain != nil && !bytes.Equal(chain, cc) {
				return &Verdict{Reason: "signers disagree on the chain code"}, nil
			}
			chain = cc
		}
	}
	if len(byKey) != 1 {
		var parts []string
		for key, signers := range byKey {
			parts = append(parts, fmt.Sprintf("%s reported %s", strings.Join(signers, ", "), short(key)))
		}
		sort.Strings(parts)
		return &Verdict{Reason: "signers disagree on the public key: " + strings.Join(parts, "; ")}, nil
	}
	pub := reports[0].Output[:n]
	if !k.valid(pub) {
		return &Verdict{Reason: "the signers reported an invalid public key"}, nil
	}
	return &Verdict{Success: &store.CeremonyFinish{State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: bytes.Clone(pub), ChainCode: bytes.Clone(chain)}}}, nil
}

func validXOnly(pub []byte) bool {
	_, err := schnorr.ParsePubKey(pub)
	return err == nil
}

func validEd25519(pub []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	_, err := new(edwards25519.Point).SetBytes(pub)
	return err == nil
}

// schemeSign is signing by a quorum for a scheme with 64-byte signatures
// that are not ECDSA: same plan and retries, its own payload and check.
type schemeSign struct {
	ecdsaSign
	// verify checks a reported signature for wallet w and request sg.
	verify func(w *store.Wallet, sg *store.Signature, sig []byte) bool
}

// Describe gives signers the digest (Schnorr) or the message (Ed25519),
// the wallet's key, and a child wallet's parent and path.
func (p schemeSign) Describe(ctx context.Context, s Store, c *store.Ceremony, out *ceremonyv1.Ceremony) error {
	return describeSignature(ctx, s, c, out, func(sg *store.Signature, w *store.Wallet) error {
		switch sg.Kind {
		case store.KindHash:
			out.SignatureKind, out.Payload = walletv1.SignatureKind_SIGNATURE_KIND_HASH, sg.Hash
		case store.KindRaw:
			out.SignatureKind, out.Payload = walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE, sg.RawMessage
		default:
			return fmt.Errorf("signature %s: kind %q is not signed by key scheme %q", sg.ID, sg.Kind, w.KeyScheme)
		}
		return nil
	})
}

// Decide marks the signature signed with the first result if it verifies;
// one that does not costs its signer its place in the next quorum.
func (p schemeSign) Decide(ctx context.Context, s Store, c *store.Ceremony, reports []*store.CeremonyReport) (*Verdict, error) {
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
	r := reports[0]
	if len(r.Output) != 64 || !p.verify(w, sg, r.Output) {
		return &Verdict{Reason: r.Signer + " reported a signature that does not verify against the wallet's public key",
			Faulty: []string{r.Signer}}, nil
	}
	return &Verdict{Success: &store.CeremonyFinish{State: store.CeremonySucceeded, Signature: &store.SignatureOutcome{
		Status: store.SignatureSigned, R: bytes.Clone(r.Output[:32]), S: bytes.Clone(r.Output[32:])}}}, nil
}

// verifyBIP340 checks a BIP-340 signature of the digest by the wallet's
// Taproot output key (the internal key tweaked per BIP-341).
func verifyBIP340(w *store.Wallet, sg *store.Signature, sig []byte) bool {
	_, q, err := address.TaprootTweak(w.PublicKey)
	if err != nil {
		return false
	}
	pub, err := schnorr.ParsePubKey(q)
	if err != nil {
		return false
	}
	parsed, err := schnorr.ParseSignature(sig)
	return err == nil && parsed.Verify(sg.Digest, pub)
}

// verifyEd25519 checks an RFC 8032 signature of the message bytes.
func verifyEd25519(w *store.Wallet, sg *store.Signature, sig []byte) bool {
	return len(w.PublicKey) == ed25519.PublicKeySize && ed25519.Verify(w.PublicKey, sg.RawMessage, sig)
}
