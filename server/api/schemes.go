package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/bip32"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

var (
	// ErrInvalidRequest reports a request field that is wrong for the
	// wallet or scheme it names (InvalidArgument); its text names the field.
	ErrInvalidRequest = wire.NewSentinel(connect.CodeInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, "invalid request")
	// ErrSchemeUnsupported reports a key scheme a backend cannot hold
	// (Unimplemented); its text names the scheme, the backend and why.
	ErrSchemeUnsupported = wire.NewSentinel(connect.CodeUnimplemented, walletv1.ErrorReason_ERROR_REASON_SCHEME_UNSUPPORTED, "key scheme not supported")
)

// requestError is an error of one of the kinds above whose text leads
// with the field or scheme it is about, without the kind's own words.
type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.kind }

// invalidField reports a request field that does not suit the wallet.
func invalidField(field, format string, args ...any) error {
	return &requestError{kind: ErrInvalidRequest, msg: field + ": " + fmt.Sprintf(format, args...)}
}

// hsmSchemeLimits says why the HSM backend refuses a key scheme. The HSM
// keeps no per-wallet state: every key is generated in the module, wrapped
// with CKM_AES_KEY_WRAP_PAD and unwrapped to sign, so a scheme needs both
// a wrappable key type and a signing mechanism in the PKCS#11 module.
var hsmSchemeLimits = map[string]string{
	store.KeySchemeSchnorr: "PKCS#11 defines no BIP-340 Schnorr mechanism and SoftHSM 2.6 offers none " +
		"(CKM_ECDSA is the only secp256k1 signing mechanism), so the HSM cannot sign for a Taproot key",
	store.KeySchemeEd25519: "SoftHSM 2.6.1 cannot wrap Ed25519 (CKK_EC_EDWARDS) private keys with CKM_AES_KEY_WRAP_PAD, " +
		"and the HSM backend stores every key wrapped (it keeps no key in the token)",
}

// schemeFromProto maps the API's key scheme to the stored one.
func schemeFromProto(k walletv1.KeyScheme) (string, error) {
	switch k {
	case walletv1.KeyScheme_KEY_SCHEME_UNSPECIFIED, walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1:
		return store.KeySchemeSecp256k1, nil
	case walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1:
		return store.KeySchemeSchnorr, nil
	case walletv1.KeyScheme_KEY_SCHEME_ED25519:
		return store.KeySchemeEd25519, nil
	default:
		return "", invalidField("key_scheme", "unknown value %d", k)
	}
}

func schemeToProto(scheme string) walletv1.KeyScheme {
	switch scheme {
	case store.KeySchemeSchnorr:
		return walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1
	case store.KeySchemeEd25519:
		return walletv1.KeyScheme_KEY_SCHEME_ED25519
	default:
		return walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1
	}
}

// checkScheme refuses, before any work starts, a scheme the backend
// cannot hold.
func checkScheme(scheme string, backend store.Backend) error {
	if backend != store.BackendHSM {
		return nil
	}
	if why, ok := hsmSchemeLimits[scheme]; ok {
		return &requestError{kind: ErrSchemeUnsupported,
			msg: fmt.Sprintf("key_scheme %s on backend BACKEND_HSM: %s; use BACKEND_MPC", schemeToProto(scheme), why)}
	}
	return nil
}

// createChild makes a BIP-32 child wallet of an active MPC secp256k1
// wallet at once: its key is derived from the parent's public key and
// chain code, and the parent's signers sign for it with derived shares.
func (s *WalletServer) createChild(ctx context.Context, m *walletv1.CreateWalletRequest) (*walletv1.Wallet, error) {
	if m.GetParentWalletId() == "" {
		return nil, invalidField("derivation_path", "needs parent_wallet_id")
	}
	path, err := bip32.ParsePath(m.GetDerivationPath())
	if err != nil {
		return nil, invalidField("derivation_path", "%v", err)
	}
	parent, err := s.store.GetWallet(ctx, m.GetParentWalletId())
	if err != nil {
		return nil, fmt.Errorf("parent_wallet_id: wallet %s: %w", m.GetParentWalletId(), err)
	}
	pub, err := childKey(parent, m, path)
	if err != nil {
		return nil, err
	}
	w := &store.Wallet{
		ID: ids.Child(parent.ID, m.GetDerivationPath()), Owner: owner(ctx), ExternalID: m.GetExternalId(), Name: m.GetName(), Backend: parent.Backend,
		KeyScheme: parent.KeyScheme, Status: store.WalletActive, PublicKey: pub, Threshold: parent.Threshold,
		Signers: parent.Signers, ParentWalletID: parent.ID, DerivationPath: m.GetDerivationPath(),
	}
	w.RequestHash = fingerprint("wallet", string(w.Backend), w.KeyScheme, w.Name, w.ParentWalletID, w.DerivationPath)
	got, created, err := s.store.CreateWallet(ctx, w, store.Work{})
	if db.IsUniqueViolation(err) {
		// The child's id is its parent and path: there is one per path.
		return nil, wire.Errorf(connect.CodeAlreadyExists, walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT,
			"derivation_path: wallet %s already has a child at %s: %s", parent.ID, m.GetDerivationPath(), w.ID)
	}
	if err != nil {
		return nil, err
	}
	if created {
		s.logger.InfoContext(ctx, "child wallet created", "wallet", got.ID, "parent", got.ParentWalletID, "path", got.DerivationPath)
	} else if err := checkReplay(ctx, "wallet", got.ID, got.ExternalID); err != nil {
		return nil, err
	}
	return walletToProto(got)
}

// childKey checks that parent can have the child m asks for and derives
// the child's public key.
func childKey(parent *store.Wallet, m *walletv1.CreateWalletRequest, path []uint32) ([]byte, error) {
	switch {
	case m.GetKeyScheme() != walletv1.KeyScheme_KEY_SCHEME_UNSPECIFIED && m.GetKeyScheme() != schemeToProto(parent.KeyScheme):
		return nil, invalidField("key_scheme", "a child wallet has its parent's scheme, %s", schemeToProto(parent.KeyScheme))
	case m.GetBackend() != walletv1.Backend_BACKEND_UNSPECIFIED && m.GetBackend() != backendToProto(parent.Backend):
		return nil, invalidField("backend", "a child wallet has its parent's backend, %s", backendToProto(parent.Backend))
	case parent.KeyScheme == store.KeySchemeEd25519:
		return nil, invalidField("parent_wallet_id", "wallet %s is Ed25519, which has no non-hardened BIP-32 derivation", parent.ID)
	case parent.ParentWalletID != "":
		return nil, invalidField("parent_wallet_id", "wallet %s is itself a child; derive from %s with a longer path", parent.ID, parent.ParentWalletID)
	case parent.Backend != store.BackendMPC:
		return nil, &requestError{kind: ErrSchemeUnsupported, msg: "parent_wallet_id: child wallets on backend BACKEND_HSM: " +
			"the HSM signs only with the key it unwrapped, and PKCS#11 has no BIP-32 derivation; use an MPC wallet"}
	case parent.Status != store.WalletActive:
		return nil, fmt.Errorf("%w: parent wallet %s is %s", store.ErrWalletNotActive, parent.ID, parent.Status)
	case len(parent.ChainCode) != bip32.ChainCodeLen:
		return nil, fmt.Errorf("%w: parent wallet %s has no BIP-32 chain code (its key was generated before child wallets existed)", store.ErrStateConflict, parent.ID)
	}
	pub := parent.PublicKey
	if parent.KeyScheme == store.KeySchemeSchnorr {
		// BIP-32 reads an x-only key as the even point 0x02||x.
		pub = append([]byte{2}, pub...)
	}
	child, err := bip32.DeriveChild(pub, parent.ChainCode, path)
	if err != nil {
		return nil, invalidField("derivation_path", "%v", err)
	}
	if parent.KeyScheme == store.KeySchemeSchnorr {
		return child.PublicKey[1:], nil
	}
	return child.PublicKey, nil
}

// signaturePayload fills sg from the request's payload, refusing one the
// wallet's scheme does not sign: ECDSA signs hashes and EIP-191 messages,
// Schnorr (BIP-340, Taproot) 32-byte hashes (sighashes), Ed25519 message
// bytes only.
func signaturePayload(w *store.Wallet, m *walletv1.CreateSignatureRequest, sg *store.Signature) error {
	scheme := schemeToProto(w.KeyScheme)
	switch p := m.GetPayload().(type) {
	case *walletv1.CreateSignatureRequest_Hash:
		if w.KeyScheme == store.KeySchemeEd25519 {
			return invalidField("hash", "wallet %s is %s, which signs messages, not hashes: send the message bytes in raw_message", w.ID, scheme)
		}
		sg.Kind, sg.Hash, sg.Digest = store.KindHash, p.Hash, p.Hash
	case *walletv1.CreateSignatureRequest_Message:
		if w.KeyScheme != store.KeySchemeSecp256k1 {
			return invalidField("message", "EIP-191 messages are signed by ECDSA wallets; wallet %s is %s", w.ID, scheme)
		}
		sg.Kind, sg.Message, sg.Digest = store.KindEIP191, p.Message, address.EIP191Digest([]byte(p.Message))
	case *walletv1.CreateSignatureRequest_RawMessage:
		if w.KeyScheme != store.KeySchemeEd25519 {
			return invalidField("raw_message", "only Ed25519 wallets sign message bytes; wallet %s is %s: send a 32-byte hash", w.ID, scheme)
		}
		sg.Kind, sg.RawMessage = store.KindRaw, p.RawMessage
	default:
		return connect.NewError(connect.CodeInvalidArgument, errors.New("payload: exactly one of hash, message or raw_message is required"))
	}
	return nil
}

// walletAddresses derives the addresses of an active wallet's key.
func walletAddresses(w *store.Wallet) (*walletv1.Addresses, error) {
	switch w.KeyScheme {
	case store.KeySchemeSchnorr:
		tr, err := address.BitcoinP2TR(w.PublicKey, "bc")
		if err != nil {
			return nil, fmt.Errorf("wallet %s: derive Taproot address: %w", w.ID, err)
		}
		return &walletv1.Addresses{BitcoinP2Tr: tr}, nil
	case store.KeySchemeEd25519:
		sol, err := address.Solana(w.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("wallet %s: derive Solana address: %w", w.ID, err)
		}
		return &walletv1.Addresses{Solana: sol}, nil
	}
	eth, err := address.Ethereum(w.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("wallet %s: derive Ethereum address: %w", w.ID, err)
	}
	btc, err := address.BitcoinP2WPKH(w.PublicKey, "bc")
	if err != nil {
		return nil, fmt.Errorf("wallet %s: derive Bitcoin address: %w", w.ID, err)
	}
	return &walletv1.Addresses{Ethereum: eth, BitcoinP2Wpkh: btc}, nil
}

// resultToProto renders a stored, already verified signature in the
// encodings of its scheme, which the signature's kind and the wallet's
// key length tell apart: raw messages are Ed25519; hashes are Schnorr when
// signed by a 32-byte (x-only) key.
func resultToProto(s *store.Signature, scheme string) *walletv1.SignatureResult {
	sig := append(append([]byte{}, s.R...), s.S...)
	switch scheme {
	case store.KeySchemeSchnorr:
		return &walletv1.SignatureResult{Schnorr: sig}
	case store.KeySchemeEd25519:
		return &walletv1.SignatureResult{Ed25519: sig}
	}
	var es ecsig.Signature
	copy(es.R[:], s.R)
	copy(es.S[:], s.S)
	es.V = byte(s.RecoveryID)
	eth := es.Ethereum()
	eth[64] += 27 // ecrecover and personal_sign use v = 27 + recovery id
	return &walletv1.SignatureResult{R: es.R[:], S: es.S[:], RecoveryId: uint32(s.RecoveryID), Der: es.DER(), Ethereum: eth}
}
