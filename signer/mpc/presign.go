package mpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/pkg/protocol"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"
)

// Presign runs the CMP presigning rounds among signers (a quorum holding
// cfg's key, including cfg.ID): the expensive part of a signature, made
// before the message is known. The result signs exactly one message, with
// PresignOnline among the same signers; using it twice reveals the key.
func (r *Runner) Presign(ctx context.Context, sessionID []byte, cfg *cmp.Config, signers []party.ID, tr Transport) (*ecdsa.PreSignature, error) {
	ids, err := r.checkSigners(sessionID, cfg, signers)
	if err != nil {
		return nil, err
	}
	pl := r.newPool()
	defer pl.TearDown()
	h, err := protocol.NewMultiHandler(cmp.Presign(cfg, ids, pl), sessionID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	res, err := r.run(ctx, h, cfg.ID, ids, tr)
	if err != nil {
		return nil, err
	}
	pre, ok := res.(*ecdsa.PreSignature)
	if !ok || pre == nil || pre.Validate() != nil || !slices.Equal(pre.SignerIDs(), ids) {
		return nil, fmt.Errorf("%w: unexpected presign output %T", ErrBadResult, res)
	}
	return pre, nil
}

// PresignOnline signs digest with a presignature in one round among the
// presignature's signers. A party whose share does not fit is named in the
// AbortError. The caller must have made sure, durably, that pre is never
// used again before calling this: the first message out carries this
// party's share of the signature.
func (r *Runner) PresignOnline(ctx context.Context, sessionID []byte, cfg *cmp.Config, pre *ecdsa.PreSignature, digest []byte, tr Transport) (*ecdsa.Signature, error) {
	if pre == nil {
		return nil, fmt.Errorf("%w: nil presignature", ErrInvalidArgument)
	}
	if len(digest) != 32 {
		return nil, fmt.Errorf("%w: digest is %d bytes, want 32", ErrInvalidArgument, len(digest))
	}
	ids, err := r.checkSigners(sessionID, cfg, pre.SignerIDs())
	if err != nil {
		return nil, err
	}
	msg := append([]byte(nil), digest...)
	return r.runSign(ctx, sessionID, cmp.PresignOnline(cfg, pre, msg, nil), cfg, ids, msg, tr)
}

// checkSigners validates a signing quorum of cfg's key.
func (r *Runner) checkSigners(sessionID []byte, cfg *cmp.Config, signers []party.ID) (party.IDSlice, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidArgument)
	}
	if len(sessionID) == 0 {
		return nil, fmt.Errorf("%w: empty session id", ErrInvalidArgument)
	}
	ids, err := checkParties(cfg.ID, signers)
	if err != nil {
		return nil, err
	}
	if !cfg.PartyIDs().Contains(ids...) {
		return nil, fmt.Errorf("%w: signers %v are not all holders of this key", ErrInvalidArgument, ids)
	}
	if len(ids) < cfg.Threshold+1 {
		return nil, fmt.Errorf("%w: %d signers, key needs %d", ErrInvalidArgument, len(ids), cfg.Threshold+1)
	}
	return ids, nil
}

// PresignatureR returns the presignature's nonce point R (33-byte
// compressed), the same at every signer of one presigning: what they report
// so the coordinator can check they agree.
func PresignatureR(pre *ecdsa.PreSignature) ([]byte, error) {
	if pre == nil || pre.R == nil {
		return nil, fmt.Errorf("%w: nil presignature", ErrInvalidArgument)
	}
	return pre.R.MarshalBinary()
}

// presigVersion is the first byte of an encoded presignature.
const presigVersion = 1

// maxPresigField bounds one encoded field: points and scalars are tens of
// bytes, point maps a few KiB for large groups.
const maxPresigField = 1 << 20

// MarshalPresignature encodes pre for storage (then sealed under the KEK):
// a version byte and six length-prefixed fields.
func MarshalPresignature(pre *ecdsa.PreSignature) ([]byte, error) {
	if pre == nil || pre.R == nil || pre.RBar == nil || pre.S == nil || pre.KShare == nil || pre.ChiShare == nil {
		return nil, fmt.Errorf("%w: incomplete presignature", ErrInvalidArgument)
	}
	var fields [][]byte
	fields = append(fields, []byte(pre.ID))
	for _, m := range []interface{ MarshalBinary() ([]byte, error) }{pre.R, pre.RBar, pre.S, pre.KShare, pre.ChiShare} {
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("mpc: encode presignature: %w", err)
		}
		fields = append(fields, b)
	}
	out := []byte{presigVersion}
	for _, f := range fields {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out, nil
}

// errBadPresignature reports bytes that are not an encoded presignature.
var errBadPresignature = errors.New("mpc: not an encoded presignature")

// UnmarshalPresignature decodes what MarshalPresignature made and checks
// the result is a well-formed presignature.
func UnmarshalPresignature(data []byte) (pre *ecdsa.PreSignature, err error) {
	defer func() {
		// The library's decoders were not written for hostile input.
		if p := recover(); p != nil {
			pre, err = nil, fmt.Errorf("%w: %v", errBadPresignature, p)
		}
	}()
	if len(data) < 1 || data[0] != presigVersion {
		return nil, errBadPresignature
	}
	rd := bytes.NewReader(data[1:])
	fields := make([][]byte, 6)
	for i := range fields {
		var n uint32
		if err := binary.Read(rd, binary.BigEndian, &n); err != nil || n > maxPresigField || int(n) > rd.Len() {
			return nil, errBadPresignature
		}
		fields[i] = make([]byte, n)
		if _, err := rd.Read(fields[i]); err != nil && n > 0 {
			return nil, errBadPresignature
		}
	}
	if rd.Len() != 0 || len(fields[0]) == 0 {
		return nil, errBadPresignature
	}
	pre = ecdsa.EmptyPreSignature(curve.Secp256k1{})
	pre.ID = fields[0]
	for i, u := range []interface{ UnmarshalBinary([]byte) error }{pre.R, pre.RBar, pre.S, pre.KShare, pre.ChiShare} {
		if err := u.UnmarshalBinary(fields[i+1]); err != nil {
			return nil, fmt.Errorf("%w: field %d: %v", errBadPresignature, i+1, err)
		}
	}
	if err := pre.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadPresignature, err)
	}
	return pre, nil
}
