package mpc

import (
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/internal/ecsig"
)

// PublicKey returns the 33-byte compressed SEC1 encoding of the key shared
// by cfg, the form reported to the coordinator and stored with the wallet.
func PublicKey(cfg *cmp.Config) ([]byte, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidArgument)
	}
	p, ok := cfg.PublicPoint().(*curve.Secp256k1Point)
	if !ok || p.IsIdentity() {
		return nil, fmt.Errorf("%w: config does not hold a secp256k1 key", ErrInvalidArgument)
	}
	return p.MarshalBinary()
}

// ToSignature converts the library's signature into Sigil's canonical form
// (low S, recovery id), verified against pub (33-byte compressed) with an
// implementation independent of the MPC library.
//
// It reads sig without modifying it, unlike the library's SigEthereum,
// which negates S and rewrites R in place.
func ToSignature(sig *ecdsa.Signature, pub, digest []byte) (ecsig.Signature, error) {
	if sig == nil || sig.R == nil || sig.S == nil {
		return ecsig.Signature{}, fmt.Errorf("%w: nil signature", ErrInvalidArgument)
	}
	r, err := sig.R.XScalar().MarshalBinary()
	if err != nil {
		return ecsig.Signature{}, fmt.Errorf("mpc: encode r: %w", err)
	}
	s, err := sig.S.MarshalBinary()
	if err != nil {
		return ecsig.Signature{}, fmt.Errorf("mpc: encode s: %w", err)
	}
	return ecsig.FromRS(r, s, pub, digest)
}
