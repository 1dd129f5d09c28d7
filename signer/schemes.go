package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/internal/bip32"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// Key schemes besides ECDSA, as the coordinator names them.
const (
	// schemeSchnorr is BIP-340 Schnorr over secp256k1 (FROST, Taproot).
	schemeSchnorr = "schnorr-secp256k1"
	// schemeEd25519 is Ed25519 (FROST-Ed25519).
	schemeEd25519 = "ed25519"
)

// registerSchemes adds the protocols of the schemes beyond CMP ECDSA, and
// wraps CMP's so ECDSA keys carry their BIP-32 chain code and child
// wallets sign with derived shares.
func registerSchemes(p protocols) {
	keygen, sign := ceremonyv1.CeremonyKind_CEREMONY_KIND_KEYGEN, ceremonyv1.CeremonyKind_CEREMONY_KIND_SIGN
	p[protocolKey{schemeSecp256k1, keygen}] = cmpKeygenChain{p[protocolKey{schemeSecp256k1, keygen}]}
	p[protocolKey{schemeSecp256k1, sign}] = cmpSignDerived{p[protocolKey{schemeSecp256k1, sign}]}
	p[protocolKey{schemeSchnorr, keygen}] = frostKeygen{}
	p[protocolKey{schemeSchnorr, sign}] = frostSign{}
	p[protocolKey{schemeEd25519, keygen}] = edKeygen{}
	p[protocolKey{schemeEd25519, sign}] = edSign{}
}

// openShare decrypts this signer's share of a wallet's current key, of
// the given scheme. With pendingOK a share whose key generation is not
// settled yet opens too (to report what it holds); otherwise it must be
// known to have succeeded. The caller clears the result.
func (s *Signer) openShare(ctx context.Context, walletID, scheme string, pendingOK bool) (*share, []byte, error) {
	sh, err := s.shares.get(ctx, walletID)
	if err != nil {
		return nil, nil, err
	}
	if sh.State != shareActive && !pendingOK {
		s.resolvePending(ctx)
		if sh, err = s.shares.get(ctx, walletID); err != nil {
			return nil, nil, err
		}
		if sh.State != shareActive {
			return nil, nil, fmt.Errorf("the share of wallet %s is from a key generation not known to have succeeded", walletID)
		}
	}
	if sh.Scheme != scheme {
		return nil, nil, fmt.Errorf("the share of wallet %s is of scheme %q, not %q", walletID, sh.Scheme, scheme)
	}
	plain, err := s.kek.Open(sealBinding(walletID, sh.KeyEpoch), s.name, sh.Sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt share of wallet %s: %w", walletID, err)
	}
	return sh, plain, nil
}

// storeSealed seals plain under the KEK and stores it as a pending share
// (durable before anyone is told the key exists), then clears plain.
func (s *Signer) storeSealed(ctx context.Context, sh *share, plain []byte) error {
	var err error
	sh.Sealed, err = s.kek.Seal(sealBinding(sh.WalletID, sh.KeyEpoch), s.name, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("seal share: %w", err)
	}
	return s.putPending(ctx, sh)
}

// repeatKeygen handles a key generation this signer may already have run:
// the stored key when it is this very ceremony (a report lost in a
// restart), an error when the wallet has another share, nil to run it.
func (s *Signer) repeatKeygen(ctx context.Context, c *ceremonyv1.Ceremony) (*share, error) {
	sh, err := s.shares.get(ctx, c.GetWalletId())
	if errors.Is(err, ErrNoShare) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sh.KeygenCeremonyID == c.GetId() {
		return sh, nil
	}
	return nil, fmt.Errorf("this signer already holds a share of wallet %s", c.GetWalletId())
}

// signPath is the BIP-32 path of a child wallet's signature, nil for a
// wallet's own key; and the wallet whose share signs.
//
// The child's wallet id is derived from its parent and path (ids.Child),
// and the guard has checked the request against that wallet id: so the
// parent and path the coordinator names must be the ones the id stands for,
// or a request for one wallet would be signed with another's key.
func signPath(c *ceremonyv1.Ceremony) (shareWallet string, path []uint32, err error) {
	if c.GetShareWalletId() == "" {
		if c.GetDerivationPath() != "" {
			return "", nil, fmt.Errorf("%w: a derivation path without a parent wallet", errRejected)
		}
		return c.GetWalletId(), nil, nil
	}
	path, err = bip32.ParsePath(c.GetDerivationPath())
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", errRejected, err)
	}
	if want := ids.Child(c.GetShareWalletId(), c.GetDerivationPath()); c.GetWalletId() != want {
		return "", nil, fmt.Errorf("%w: wallet %s is not the child of %s at %s (that is %s)",
			errRejected, c.GetWalletId(), c.GetShareWalletId(), c.GetDerivationPath(), want)
	}
	return c.GetShareWalletId(), path, nil
}

func signReport(c *ceremonyv1.Ceremony, sig []byte) *ceremonyv1.CompleteCeremonyRequest {
	return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
		Output: &ceremonyv1.CompleteCeremonyRequest_Sign{Sign: &ceremonyv1.SignOutput{Signature: sig}}}
}

// ---- ECDSA (CMP): chain codes and child wallets ----

// cmpKeygenChain is CMP key generation whose report also carries the
// chain key the parties agreed on, from which child wallets derive.
type cmpKeygenChain struct{ ceremonyProtocol }

func (p cmpKeygenChain) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	rep, err := p.ceremonyProtocol.run(ctx, s, c, parties, tr)
	if err != nil {
		return nil, err
	}
	_, plain, err := s.openShare(ctx, c.GetWalletId(), schemeSecp256k1, true)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	cfg := cmp.EmptyConfig(curve.Secp256k1{})
	if err := cfg.UnmarshalBinary(plain); err != nil {
		return nil, fmt.Errorf("decode share of wallet %s: %w", c.GetWalletId(), err)
	}
	rep.GetKeygen().ChainCode = bytes.Clone(cfg.ChainKey)
	return rep, nil
}

// cmpSignDerived is CMP signing; for a child wallet each signer derives
// its share of the parent's key along the child's path first.
type cmpSignDerived struct{ ceremonyProtocol }

func (p cmpSignDerived) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if c.GetShareWalletId() == "" {
		return p.ceremonyProtocol.run(ctx, s, c, parties, tr)
	}
	if err := s.authorize(ctx, c); err != nil {
		return nil, err
	}
	walletID, path, err := signPath(c)
	if err != nil {
		return nil, err
	}
	_, plain, err := s.openShare(ctx, walletID, schemeSecp256k1, false)
	if err != nil {
		return nil, err
	}
	cfg := cmp.EmptyConfig(curve.Secp256k1{})
	err = cfg.UnmarshalBinary(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode share of wallet %s: %w", walletID, err)
	}
	child, err := mpc.DeriveECDSAPath(cfg, path)
	if err != nil {
		return nil, err
	}
	if pub, err := mpc.PublicKey(child); err != nil || !bytes.Equal(pub, c.GetPublicKey()) {
		return nil, fmt.Errorf("%w: the share of wallet %s derived along %s is not for the child's public key", errRejected, walletID, c.GetDerivationPath())
	}
	sig, err := s.runner.Sign(ctx, []byte(c.GetId()), child, parties, c.GetDigest(), tr)
	if err != nil {
		return nil, err
	}
	out, err := mpc.ToSignature(sig, c.GetPublicKey(), c.GetDigest())
	if err != nil {
		return nil, err
	}
	return signReport(c, append(out.R[:], out.S[:]...)), nil
}

// ---- BIP-340 Schnorr (FROST Taproot) ----

// frostKeygen is FROST key generation of a Taproot key: the reported key
// is the x-only internal key.
type frostKeygen struct{}

func (frostKeygen) label() string { return "frost-keygen" }

func (frostKeygen) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if sh, err := s.repeatKeygen(ctx, c); err != nil || sh != nil {
		if err != nil {
			return nil, err
		}
		return keygenReport(c, sh.PublicKey), nil
	}
	cfg, err := s.runner.TaprootKeygen(ctx, []byte(c.GetId()), party.ID(s.name), parties, int(c.GetThreshold()), tr)
	if err != nil {
		return nil, err
	}
	plain, err := mpc.MarshalTaproot(cfg)
	if err != nil {
		return nil, err
	}
	pub := bytes.Clone(cfg.PublicKey)
	sh := &share{WalletID: c.GetWalletId(), KeyEpoch: firstEpoch, Scheme: schemeSchnorr, KeygenCeremonyID: c.GetId(), PublicKey: pub}
	if err := s.storeSealed(ctx, sh, plain); err != nil {
		return nil, err
	}
	rep := keygenReport(c, pub)
	rep.GetKeygen().ChainCode = bytes.Clone(cfg.ChainKey)
	return rep, nil
}

func (frostKeygen) settle(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, state ceremonyv1.CeremonyState) {
	s.settleKeygen(ctx, c.GetId(), state)
}

// frostSign is FROST Taproot signing by a quorum: every party tweaks its
// share per BIP-341 (no script tree), so the group signs for the output
// key of the wallet's P2TR address, a valid key-path spend.
type frostSign struct{}

func (frostSign) label() string { return "frost-sign" }

func (frostSign) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if err := s.authorize(ctx, c); err != nil {
		return nil, err
	}
	walletID, path, err := signPath(c)
	if err != nil {
		return nil, err
	}
	_, plain, err := s.openShare(ctx, walletID, schemeSchnorr, false)
	if err != nil {
		return nil, err
	}
	cfg, err := mpc.UnmarshalTaproot(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode share of wallet %s: %w", walletID, err)
	}
	if path != nil {
		if cfg, err = mpc.DerivePath(cfg, path); err != nil {
			return nil, err
		}
	}
	if !bytes.Equal(cfg.PublicKey, c.GetPublicKey()) {
		return nil, fmt.Errorf("%w: this signer's share of wallet %s is for another public key", errRejected, walletID)
	}
	out, err := mpc.TaprootOutputConfig(cfg)
	if err != nil {
		return nil, err
	}
	sig, err := s.runner.TaprootSign(ctx, []byte(c.GetId()), out, parties, c.GetDigest(), tr)
	if err != nil {
		return nil, err
	}
	return signReport(c, sig), nil
}

func (frostSign) settle(context.Context, *Signer, *ceremonyv1.Ceremony, ceremonyv1.CeremonyState) {}

// ---- Ed25519 (FROST-Ed25519) ----

// edKeygen is FROST-Ed25519 key generation.
type edKeygen struct{}

func (edKeygen) label() string { return "ed25519-keygen" }

func (edKeygen) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if sh, err := s.repeatKeygen(ctx, c); err != nil || sh != nil {
		if err != nil {
			return nil, err
		}
		return keygenReport(c, sh.PublicKey), nil
	}
	key, err := s.runner.Ed25519Keygen(ctx, []byte(c.GetId()), party.ID(s.name), parties, int(c.GetThreshold()), tr)
	if err != nil {
		return nil, err
	}
	plain, err := mpc.MarshalEd25519(key)
	if err != nil {
		return nil, err
	}
	pub := key.PublicKey()
	sh := &share{WalletID: c.GetWalletId(), KeyEpoch: firstEpoch, Scheme: schemeEd25519, KeygenCeremonyID: c.GetId(), PublicKey: pub}
	if err := s.storeSealed(ctx, sh, plain); err != nil {
		return nil, err
	}
	return keygenReport(c, pub), nil
}

func (edKeygen) settle(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, state ceremonyv1.CeremonyState) {
	s.settleKeygen(ctx, c.GetId(), state)
}

// edSign is FROST-Ed25519 signing of the message bytes by a quorum.
type edSign struct{}

func (edSign) label() string { return "ed25519-sign" }

func (edSign) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if err := s.authorize(ctx, c); err != nil {
		return nil, err
	}
	if c.GetShareWalletId() != "" {
		return nil, fmt.Errorf("%w: Ed25519 keys have no non-hardened BIP-32 children", errRejected)
	}
	_, plain, err := s.openShare(ctx, c.GetWalletId(), schemeEd25519, false)
	if err != nil {
		return nil, err
	}
	key, err := mpc.UnmarshalEd25519(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode share of wallet %s: %w", c.GetWalletId(), err)
	}
	if !bytes.Equal(key.PublicKey(), c.GetPublicKey()) {
		return nil, fmt.Errorf("%w: this signer's share of wallet %s is for another public key", errRejected, c.GetWalletId())
	}
	sig, err := s.runner.Ed25519Sign(ctx, key, party.ID(s.name), parties, c.GetPayload(), tr)
	if err != nil {
		return nil, err
	}
	return signReport(c, sig), nil
}

func (edSign) settle(context.Context, *Signer, *ceremonyv1.Ceremony, ceremonyv1.CeremonyState) {}
