package api

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

func walletToProto(w *store.Wallet) (*walletv1.Wallet, error) {
	out := &walletv1.Wallet{
		Id:             w.ID,
		ExternalId:     w.ExternalID,
		Name:           w.Name,
		Backend:        backendToProto(w.Backend),
		KeyScheme:      schemeToProto(w.KeyScheme),
		Status:         walletStatusToProto(w.Status),
		FailureReason:  w.FailureReason,
		CreateTime:     timestamppb.New(w.CreatedAt),
		UpdateTime:     timestamppb.New(w.UpdatedAt),
		ParentWalletId: w.ParentWalletID,
		DerivationPath: w.DerivationPath,
	}
	if w.Backend == store.BackendMPC {
		out.MpcGroup = &walletv1.MpcGroup{Threshold: uint32(w.Threshold), Signers: w.Signers}
	}
	if w.Status == store.WalletActive {
		addrs, err := walletAddresses(w)
		if err != nil {
			return nil, err
		}
		out.PublicKey = w.PublicKey
		out.Addresses = addrs
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
		RawMessage:    s.RawMessage,
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
	case store.KindRaw:
		out.Kind = walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE
	}
	switch s.Status {
	case store.SignaturePending:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING
	case store.SignatureSigned:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED
		out.Result = resultToProto(s, s.KeyScheme)
	case store.SignatureRejected:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED
	case store.SignatureFailed:
		out.Status = walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED
	}
	return out
}
