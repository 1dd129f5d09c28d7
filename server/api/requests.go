package api

import (
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/reqsig"
	"github.com/sigil-wallet/sigil/server/store"
)

// WithRequestPolicy makes CreateSignature check request signatures with p
// (the signers and drivers check again, with their own keys).
func (s *WalletServer) WithRequestPolicy(p reqsig.Policy) *WalletServer {
	s.requests = p
	return s
}

// requireSigned refuses an unsigned request where signed requests are
// required. CreateSignature asks it first, before it looks the wallet up,
// so an unsigned caller learns nothing of which wallets exist.
func (s *WalletServer) requireSigned(m *walletv1.CreateSignatureRequest) error {
	if m.GetRequestSignature() == nil && s.requests.Required() {
		return connect.NewError(connect.CodePermissionDenied, errors.New(
			"request_signature: this server requires signed requests: sign CreateSignature with a request key (Go SDK WithRequestKey, TypeScript SDK requestKey, `sigil sign --request-key`)"))
	}
	return nil
}

// checkRequestSignature verifies a CreateSignature's request signature, if
// any, and records it on sg. This is the early check: a request the
// signers would refuse fails here with a clear error instead of a REJECTED
// signature.
func (s *WalletServer) checkRequestSignature(m *walletv1.CreateSignatureRequest, sg *store.Signature) error {
	rs := m.GetRequestSignature()
	if rs == nil {
		return s.requireSigned(m)
	}
	r := &reqsig.Request{
		PublicKey: rs.GetPublicKey(), RequestID: rs.GetRequestId(), Created: time.UnixMilli(rs.GetCreateTime().AsTime().UnixMilli()),
		WalletID: sg.WalletID, Kind: canonicalKind(sg.Kind), Digest: signedDigest(sg), ExternalID: sg.ExternalID,
	}
	switch rs.GetAlgorithm() {
	case walletv1.RequestKeyAlgorithm_REQUEST_KEY_ALGORITHM_ED25519:
		r.Algorithm = reqsig.Ed25519
	case walletv1.RequestKeyAlgorithm_REQUEST_KEY_ALGORITHM_ECDSA_P256_SHA256:
		r.Algorithm = reqsig.ECDSAP256
	default:
		return connect.NewError(connect.CodeInvalidArgument, errors.New("request_signature.algorithm: unknown algorithm"))
	}
	envelope := r.Envelope(rs.GetSignature())
	v, err := s.requests.Verify(envelope, reqsig.Expected{WalletID: sg.WalletID, Kind: r.Kind, Digest: r.Digest, ExternalID: sg.ExternalID}, time.Now())
	switch {
	case err == nil:
	case errors.Is(err, reqsig.ErrUntrusted), errors.Is(err, reqsig.ErrBadSignature):
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("request_signature: %w", err))
	default:
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("request_signature: %w", err))
	}
	sg.RequestID, sg.RequesterKey, sg.SignedRequest = r.RequestID, v.KeyName, envelope
	return nil
}

// canonicalKind names a kind as the signed request does.
func canonicalKind(k store.SignatureKind) string {
	switch k {
	case store.KindEIP191:
		return reqsig.KindEIP191
	case store.KindRaw:
		return reqsig.KindRaw
	}
	return reqsig.KindHash
}

// signedDigest is the digest a request signature binds: the one the wallet
// signs, or for a raw message (which is signed as it is) its SHA-256.
func signedDigest(sg *store.Signature) []byte {
	if sg.Kind == store.KindRaw {
		return reqsig.RawDigest(sg.RawMessage)
	}
	return sg.Digest
}
