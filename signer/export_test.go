package signer

import (
	"context"

	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
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
	sh := &share{WalletID: walletID, KeyEpoch: firstEpoch, Scheme: schemeSecp256k1, KeygenCeremonyID: keygenCeremonyID, PublicKey: pub}
	if err := s.storeShare(ctx, sh, cfg); err != nil {
		return err
	}
	s.settleShare(ctx, sh, ceremonyv1.CeremonyState_CEREMONY_STATE_SUCCEEDED)
	return nil
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

// OnPresignatureUsed makes s call hook right after it durably marked a
// presignature used and before it computes or releases anything from it;
// an error from hook ends the ceremony there, as a crash would.
func OnPresignatureUsed(s *Signer, hook func(ctx context.Context) error) { s.afterPresigUsed = hook }
