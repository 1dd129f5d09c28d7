package mpc

import (
	"bytes"
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"
	"github.com/taurusgroup/multi-party-sig/protocols/frost"

	"github.com/sigil-wallet/sigil/internal/bip32"
)

// The derivations below compute the path's total tweak with standard
// BIP-32 public derivation and apply it once with the library's Derive.
// multi-party-sig's own TaprootConfig.DeriveChild reads every intermediate
// key as even-y (0x02||x), which departs from BIP-32 from the second level
// on whenever an intermediate key has an odd y; a one-step Derive from the
// (even) root key matches any standard BIP-32 wallet at every depth.

// DerivePath derives a FROST Taproot share along a non-hardened BIP-32
// path below its x-only key read as 0x02||x; the child's x-only key is the
// x of the derived point (the share is negated when its y is odd).
func DerivePath(cfg *frost.TaprootConfig, path []uint32) (*frost.TaprootConfig, error) {
	child, err := bip32.DeriveChild(append([]byte{2}, cfg.PublicKey...), cfg.ChainKey, path)
	if err != nil {
		return nil, err
	}
	adjust, err := scalar(child.Tweak)
	if err != nil {
		return nil, err
	}
	out, err := cfg.Derive(adjust, child.ChainCode)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(out.PublicKey, child.PublicKey[1:]) {
		return nil, fmt.Errorf("%w: derived share is not for the child key", ErrBadResult)
	}
	return out, nil
}

// DeriveECDSAPath derives a CMP share along a non-hardened BIP-32 path,
// with the chain key agreed in keygen.
func DeriveECDSAPath(cfg *cmp.Config, path []uint32) (*cmp.Config, error) {
	pub, err := PublicKey(cfg)
	if err != nil {
		return nil, err
	}
	child, err := bip32.DeriveChild(pub, cfg.ChainKey, path)
	if err != nil {
		return nil, err
	}
	adjust, err := scalar(child.Tweak)
	if err != nil {
		return nil, err
	}
	out, err := cfg.Derive(adjust, child.ChainCode)
	if err != nil {
		return nil, err
	}
	if got, err := PublicKey(out); err != nil || !bytes.Equal(got, child.PublicKey) {
		return nil, fmt.Errorf("%w: derived share is not for the child key", ErrBadResult)
	}
	return out, nil
}

func scalar(b []byte) (*curve.Secp256k1Scalar, error) {
	s := curve.Secp256k1{}.NewScalar().(*curve.Secp256k1Scalar)
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("mpc: tweak scalar: %w", err)
	}
	return s, nil
}
