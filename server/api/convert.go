package api

import (
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/server/store"
)

func walletToProto(w *store.Wallet) (*walletv1.Wallet, error) {
	out := &walletv1.Wallet{
		Id:            w.ID,
		ExternalId:    w.ExternalID,
		Name:          w.Name,
		Backend:       backendToProto(w.Backend),
		KeyScheme:     walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1,
		Status:        walletStatusToProto(w.Status),
		FailureReason: w.FailureReason,
		CreateTime:    timestamppb.New(w.CreatedAt),
		UpdateTime:    timestamppb.New(w.UpdatedAt),
	}
	if w.Backend == store.BackendMPC {
		out.MpcGroup = &walletv1.MpcGroup{Threshold: uint32(w.Threshold), Signers: w.Signers}
	}
	if w.Status == store.WalletActive {
		eth, err := address.Ethereum(w.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("wallet %s: derive Ethereum address: %w", w.ID, err)
		}
		btc, err := address.BitcoinP2WPKH(w.PublicKey, "bc")
		if err != nil {
			return nil, fmt.Errorf("wallet %s: derive Bitcoin address: %w", w.ID, err)
		}
		out.PublicKey = w.PublicKey
		out.Addresses = &walletv1.Addresses{Ethereum: eth, BitcoinP2Wpkh: btc}
	}
	return out, nil
}

func backendToProto(b store.Backend) walletv1.Backend {
	switch b {
	case store.BackendMPC:
		return walletv1.Backend_BACKEND_MPC
	case store.BackendHSM:
		return walletv1.Backend_BACKEND_HSM
	default:
		return walletv1.Backend_BACKEND_UNSPECIFIED
	}
}

func walletStatusToProto(s store.WalletStatus) walletv1.WalletStatus {
	switch s {
	case store.WalletCreating:
		return walletv1.WalletStatus_WALLET_STATUS_CREATING
	case store.WalletActive:
		return walletv1.WalletStatus_WALLET_STATUS_ACTIVE
	case store.WalletFailed:
		return walletv1.WalletStatus_WALLET_STATUS_FAILED
	default:
		return walletv1.WalletStatus_WALLET_STATUS_UNSPECIFIED
	}
}

func walletStatusFromProto(s walletv1.WalletStatus) store.WalletStatus {
	switch s {
	case walletv1.WalletStatus_WALLET_STATUS_CREATING:
		return store.WalletCreating
	case walletv1.WalletStatus_WALLET_STATUS_ACTIVE:
		return store.WalletActive
	case walletv1.WalletStatus_WALLET_STATUS_FAILED:
		return store.WalletFailed
	default:
		return ""
	}
}

func signatureToProto(s *store.Signature) *walletv1.Signature {
	out := &walletv1.Signature{
		Id:            s.ID,
		ExternalId:    s.ExternalID,
		WalletId:      s.WalletID,
		Hash:          s.Hash,
		Message:       s.Message,
		Digest:        s.Digest,
		FailureReason: s.FailureReason,
		CreateTime:    timestamppb.New(s.CreatedAt),
		UpdateTime:    timestamppb.New(s.UpdatedAt),
		RequestId:     s.RequestID,
		RequesterKey:  s.RequesterKey,
	}
	switch s.Kind {
	case store.KindHash:
		out.Kind = walletv1.SignatureKind_SIGNATURE_KIND_HASH
	case store.KindEIP191:
		out.Kind = walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE
	}
	switch s.Status {
	case store.SignaturePending:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING
	case store.SignatureSigned:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED
		out.Result = resultToProto(s)
	case store.SignatureRejected:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED
	case store.SignatureFailed:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED
	}
	return out
}

// resultToProto renders a stored (already verified, low-S) signature in
// every encoding the API promises.
func resultToProto(s *store.Signature) *walletv1.SignatureResult {
	var sig ecsig.Signature
	copy(sig.R[:], s.R)
	copy(sig.S[:], s.S)
	sig.V = byte(s.RecoveryID)
	eth := sig.Ethereum()
	eth[64] += 27 // ecrecover and personal_sign use v = 27 + recovery id
	return &walletv1.SignatureResult{
		R:          sig.R[:],
		S:          sig.S[:],
		RecoveryId: uint32(s.RecoveryID),
		Der:        sig.DER(),
		Ethereum:   eth,
	}
}
