package mpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/pkg/protocol"
	"github.com/taurusgroup/multi-party-sig/pkg/taproot"
	"github.com/taurusgroup/multi-party-sig/protocols/frost"

	"github.com/sigil-wallet/sigil/internal/address"
)

// chainCodeTag domain-separates the BIP-32 chain code of a FROST key.
// multi-party-sig's FROST key generation (v0.7.0-alpha) agrees on no chain
// key, unlike CMP's, so every party derives the same one from what they
// all hold: the session (ceremony) id and the group key. It is as secret
// as the ceremony id, which is to say not: like any xpub's chain code, it
// only keeps children unlinkable for whoever lacks it.
const chainCodeTag = "Sigil/FROST-chain-code"

// TaprootKeygen runs FROST key generation for a BIP-340 (Taproot) key
// among parties and returns this party's share, whose PublicKey is the
// 32-byte x-only internal key and whose ChainKey is set for BIP-32.
// threshold is Sigil's t.
func (r *Runner) TaprootKeygen(ctx context.Context, sessionID []byte, self party.ID, parties []party.ID, threshold int, tr Transport) (*frost.TaprootConfig, error) {
	ids, err := checkKeygen(sessionID, self, parties, threshold)
	if err != nil {
		return nil, err
	}
	h, err := protocol.NewMultiHandler(frost.KeygenTaproot(self, ids, threshold-1), sessionID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	res, err := r.run(ctx, h, self, ids, tr)
	if err != nil {
		return nil, err
	}
	cfg, ok := res.(*frost.TaprootConfig)
	if !ok || cfg.ID != self || cfg.Threshold != threshold-1 || len(cfg.VerificationShares) != len(ids) || len(cfg.PublicKey) != 32 {
		return nil, fmt.Errorf("%w: unexpected keygen output %T", ErrBadResult, res)
	}
	cfg.ChainKey = taproot.TaggedHash(chainCodeTag, sessionID, cfg.PublicKey)
	return cfg, nil
}

// TaprootOutputConfig returns the share of the Taproot output key Q = P +
// tG, t = H_TapTweak(P), of cfg's internal key P (BIP-341 with no script
// tree): every party adds t to its share (and negates when Q has an odd y,
// as BIP-340 keys must be even), so the group signs key-path spends.
func TaprootOutputConfig(cfg *frost.TaprootConfig) (*frost.TaprootConfig, error) {
	t, q, err := address.TaprootTweak(cfg.PublicKey)
	if err != nil {
		return nil, err
	}
	adjust := curve.Secp256k1{}.NewScalar().(*curve.Secp256k1Scalar)
	if err := adjust.UnmarshalBinary(t); err != nil {
		return nil, fmt.Errorf("mpc: tweak scalar: %w", err)
	}
	out, err := cfg.Derive(adjust, nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(out.PublicKey, q) {
		return nil, fmt.Errorf("%w: tweaked share is not for the output key", ErrBadResult)
	}
	return out, nil
}

// TaprootSign runs FROST signing of msg by signers with cfg (already
// tweaked or derived as the caller needs) and returns the 64-byte BIP-340
// signature, verified against cfg's x-only key.
func (r *Runner) TaprootSign(ctx context.Context, sessionID []byte, cfg *frost.TaprootConfig, signers []party.ID, msg []byte, tr Transport) ([]byte, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidArgument)
	}
	if len(msg) != 32 {
		return nil, fmt.Errorf("%w: message is %d bytes, want 32", ErrInvalidArgument, len(msg))
	}
	if len(sessionID) == 0 {
		return nil, fmt.Errorf("%w: empty session id", ErrInvalidArgument)
	}
	ids, err := checkParties(cfg.ID, signers)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, ok := cfg.VerificationShares[id]; !ok {
			return nil, fmt.Errorf("%w: signer %s holds no share of this key", ErrInvalidArgument, id)
		}
	}
	if len(ids) < cfg.Threshold+1 {
		return nil, fmt.Errorf("%w: %d signers, key needs %d", ErrInvalidArgument, len(ids), cfg.Threshold+1)
	}
	m := bytes.Clone(msg)
	h, err := protocol.NewMultiHandler(frost.SignTaproot(cfg, ids, m), sessionID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	res, err := r.run(ctx, h, cfg.ID, ids, tr)
	if err != nil {
		return nil, err
	}
	sig, ok := res.(taproot.Signature)
	if !ok || len(sig) != taproot.SignatureLen || !cfg.PublicKey.Verify(sig, m) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrBadResult)
	}
	return []byte(sig), nil
}

// checkKeygen checks what every key generation needs (CMP, FROST and
// FROST-Ed25519 alike).
func checkKeygen(sessionID []byte, self party.ID, parties []party.ID, threshold int) (party.IDSlice, error) {
	ids, err := checkParties(self, parties)
	if err != nil {
		return nil, err
	}
	if len(ids) < 2 {
		return nil, fmt.Errorf("%w: keygen needs at least 2 parties", ErrInvalidArgument)
	}
	// t = 1 would give every party a share equal to the whole key: refuse
	// it whoever asks, so a compromised coordinator cannot weaken a key.
	if threshold < 2 || threshold > len(ids) {
		return nil, fmt.Errorf("%w: threshold %d outside 2..%d", ErrInvalidArgument, threshold, len(ids))
	}
	if len(sessionID) == 0 {
		return nil, fmt.Errorf("%w: empty session id", ErrInvalidArgument)
	}
	return ids, nil
}

// taprootShare is the stored form of a FROST Taproot share: the library's
// config has no binary encoding of its own.
type taprootShare struct {
	ID                 string            `json:"id"`
	Threshold          int               `json:"threshold"`
	PrivateShare       []byte            `json:"private_share"`
	PublicKey          []byte            `json:"public_key"`
	ChainKey           []byte            `json:"chain_key"`
	VerificationShares map[string][]byte `json:"verification_shares"`
}

// MarshalTaproot encodes cfg for storage. The result holds the secret
// share: the caller seals and clears it.
func MarshalTaproot(cfg *frost.TaprootConfig) ([]byte, error) {
	priv, err := cfg.PrivateShare.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	s := taprootShare{ID: string(cfg.ID), Threshold: cfg.Threshold, PrivateShare: priv, PublicKey: cfg.PublicKey,
		ChainKey: cfg.ChainKey, VerificationShares: map[string][]byte{}}
	for id, p := range cfg.VerificationShares {
		b, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		s.VerificationShares[string(id)] = b
	}
	return json.Marshal(s)
}

// UnmarshalTaproot decodes what MarshalTaproot made.
func UnmarshalTaproot(data []byte) (*frost.TaprootConfig, error) {
	var s taprootShare
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("mpc: decode taproot share: %w", err)
	}
	defer clear(s.PrivateShare)
	priv := curve.Secp256k1{}.NewScalar().(*curve.Secp256k1Scalar)
	if err := priv.UnmarshalBinary(s.PrivateShare); err != nil {
		return nil, fmt.Errorf("mpc: decode taproot share: %w", err)
	}
	if _, err := (curve.Secp256k1{}).LiftX(s.PublicKey); err != nil {
		return nil, fmt.Errorf("mpc: decode taproot share: public key: %w", err)
	}
	cfg := &frost.TaprootConfig{ID: party.ID(s.ID), Threshold: s.Threshold, PrivateShare: priv,
		PublicKey: taproot.PublicKey(s.PublicKey), ChainKey: s.ChainKey, VerificationShares: map[party.ID]*curve.Secp256k1Point{}}
	for id, b := range s.VerificationShares {
		p := curve.Secp256k1{}.NewPoint().(*curve.Secp256k1Point)
		if err := p.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("mpc: decode taproot share: verification share of %s: %w", id, err)
		}
		cfg.VerificationShares[party.ID(id)] = p
	}
	return cfg, nil
}
