package signer

import (
	"context"

	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/signer/mpc"
)

// ImportShare stores cfg as this signer's active share of walletID, sealed
// under the signer's KEK and activated exactly as a key generation would
// (so its backup is queued by the same hook). Tests
// use it to reuse fixture keys instead of paying for a key generation.
func ImportShare(ctx context.Context, s *Signer, walletID, keygenCeremonyID string, cfg *cmp.Config) error {
	pub, err := mpc.PublicKey(cfg)
	if err != nil {
		return err
	}
	plain, err := cfg.MarshalBinary()
	if err != nil {
		return err
	}
	sealed, err := s.kek.Seal(walletID, s.name, plain)
	clear(plain)
	if err != nil {
		return err
	}
	if err := s.shares.putPending(ctx, walletID, keygenCeremonyID, pub, sealed); err != nil {
		return err
	}
	return s.activateShare(ctx, walletID, keygenCeremonyID)
}

// ShareState returns the state of this signer's share of a wallet ("" when
// it holds none).
func ShareState(ctx context.Context, s *Signer, walletID string) string {
	sh, err := s.shares.get(ctx, walletID)
	if err != nil {
		return ""
	}
	return sh.State
}
