package signer

import (
	"bytes"
	"context"
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// cmpKeygen is CMP key generation: every signer of the group makes its
// share of a new key, epoch 1 of the wallet.
type cmpKeygen struct{}

func (cmpKeygen) label() string { return "keygen" }

func (cmpKeygen) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if sh, err := s.shares.get(ctx, c.GetWalletId()); err == nil {
		if sh.KeygenCeremonyID == c.GetId() {
			// This signer finished this very key generation before a restart
			// and its report may have been lost: report the stored key again.
			return keygenReport(c, sh.PublicKey), nil
		}
		return nil, fmt.Errorf("this signer already holds a share of wallet %s", c.GetWalletId())
	}
	cfg, err := s.runner.Keygen(ctx, []byte(c.GetId()), party.ID(s.name), parties, int(c.GetThreshold()), tr)
	if err != nil {
		return nil, err
	}
	pub, err := mpc.PublicKey(cfg)
	if err != nil {
		return nil, err
	}
	sh := &share{WalletID: c.GetWalletId(), KeyEpoch: firstEpoch, Scheme: schemeSecp256k1, KeygenCeremonyID: c.GetId(), PublicKey: pub}
	// Durable before anyone is told the key exists.
	if err := s.storeShare(ctx, sh, cfg); err != nil {
		return nil, err
	}
	return keygenReport(c, pub), nil
}

func keygenReport(c *ceremonyv1.Ceremony, pub []byte) *ceremonyv1.CompleteCeremonyRequest {
	return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
		Output: &ceremonyv1.CompleteCeremonyRequest_Keygen{Keygen: &ceremonyv1.KeygenOutput{PublicKey: pub}}}
}

func (cmpKeygen) settle(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, state ceremonyv1.CeremonyState) {
	s.settleKeygen(ctx, c.GetId(), state)
}

// storeShare seals cfg under the KEK and stores it as a pending share.
func (s *Signer) storeShare(ctx context.Context, sh *share, cfg *cmp.Config) error {
	plain, err := cfg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode share: %w", err)
	}
	sh.Sealed, err = s.kek.Seal(sealBinding(sh.WalletID, sh.KeyEpoch), s.name, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("seal share: %w", err)
	}
	return s.putPending(ctx, sh)
}

// cmpSign is CMP signing by a quorum.
type cmpSign struct{}

func (cmpSign) label() string { return "sign" }

func (cmpSign) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if err := s.authorize(ctx, c); err != nil {
		return nil, err
	}
	cfg, epoch, err := s.loadShare(ctx, c.GetWalletId(), c.GetPublicKey())
	if err != nil {
		return nil, err
	}
	var sig *ecdsa.Signature
	if c.GetPresignatureId() != "" {
		// One round with a presignature, used up before it starts.
		pre, err := s.takePresig(ctx, c, epoch, parties)
		if err != nil {
			return nil, err
		}
		sig, err = s.runner.PresignOnline(ctx, []byte(c.GetId()), cfg, pre, c.GetDigest(), tr)
		if err != nil {
			return nil, err
		}
	} else if sig, err = s.runner.Sign(ctx, []byte(c.GetId()), cfg, parties, c.GetDigest(), tr); err != nil {
		return nil, err
	}
	out, err := mpc.ToSignature(sig, c.GetPublicKey(), c.GetDigest())
	if err != nil {
		return nil, err
	}
	return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
		Output: &ceremonyv1.CompleteCeremonyRequest_Sign{Sign: &ceremonyv1.SignOutput{Signature: append(out.R[:], out.S[:]...)}}}, nil
}

func (cmpSign) settle(context.Context, *Signer, *ceremonyv1.Ceremony, ceremonyv1.CeremonyState) {}

// loadShare decrypts this signer's share of a wallet's current key, and
// returns it with its key epoch, refusing a share whose key generation is
// not known to have succeeded.
func (s *Signer) loadShare(ctx context.Context, walletID string, pub []byte) (*cmp.Config, int, error) {
	sh, err := s.shares.get(ctx, walletID)
	if err != nil {
		return nil, 0, err
	}
	if sh.State != shareActive {
		s.resolvePending(ctx)
		if sh, err = s.shares.get(ctx, walletID); err != nil {
			return nil, 0, err
		}
		if sh.State != shareActive {
			return nil, 0, fmt.Errorf("the share of wallet %s is from a key generation not known to have succeeded", walletID)
		}
	}
	if sh.Scheme != schemeSecp256k1 {
		return nil, 0, fmt.Errorf("the share of wallet %s is of scheme %q, not %q", walletID, sh.Scheme, schemeSecp256k1)
	}
	if !bytes.Equal(sh.PublicKey, pub) {
		return nil, 0, fmt.Errorf("the share of wallet %s is for another public key", walletID)
	}
	if cfg := s.configs.get(sh); cfg != nil {
		return cfg, sh.KeyEpoch, nil
	}
	plain, err := s.kek.Open(sealBinding(walletID, sh.KeyEpoch), s.name, sh.Sealed)
	if err != nil {
		return nil, 0, fmt.Errorf("decrypt share of wallet %s: %w", walletID, err)
	}
	defer clear(plain)
	cfg := cmp.EmptyConfig(curve.Secp256k1{})
	if err := cfg.UnmarshalBinary(plain); err != nil {
		return nil, 0, fmt.Errorf("decode share of wallet %s: %w", walletID, err)
	}
	s.configs.put(sh, cfg)
	return cfg, sh.KeyEpoch, nil
}
