package mpc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taurusgroup/frost-ed25519/pkg/eddsa"
	edfrost "github.com/taurusgroup/frost-ed25519/pkg/frost"
	edparty "github.com/taurusgroup/frost-ed25519/pkg/frost/party"
	edmessages "github.com/taurusgroup/frost-ed25519/pkg/messages"
	edstate "github.com/taurusgroup/frost-ed25519/pkg/state"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
)

// Ed25519 threshold signing: why github.com/taurusgroup/frost-ed25519.
//
// multi-party-sig has no Ed25519. Of the two Go candidates, the EdDSA part
// of github.com/bnb-chain/tss-lib/v2 (v2.0.2) is maintained but does its
// scalar arithmetic with math/big (CVE-2023-26556, non-constant-time, open
// in v2.0.2), its proofs are still open to the replay of CVE-2022-47930
// (bnb-chain/tss-lib#242, 2025), it takes the message as a big.Int (leading
// zero bytes need a side argument), and its edwards25519 dependency only
// builds through a replace directive that every importing module must copy.
// frost-ed25519 is unmaintained since 2021 but small: two-round FROST (the
// protocol RFC 9591 standardised) by the authors of multi-party-sig, over
// filippo.io/edwards25519 (constant time, kept current here by the module
// graph), with no known advisory. Its risks are bounded here: every
// message is sealed and authenticated end to end by the relay layer, the
// sender claimed inside a message must match the authenticated one, and
// every signature is verified with crypto/ed25519 before it is reported
// (and again by the coordinator).

// maxDeferred bounds the messages runEd holds for a later round.
const maxDeferred = 64

// edTimeout is the library's own inactivity timeout; the ceremony's context
// (the coordinator's deadline) normally ends a stalled run first.
const edTimeout = 10 * time.Minute

// Ed25519Share is one party's share of a threshold Ed25519 key.
type Ed25519Share struct {
	// IDs maps every holder's name to its FROST index (1..n, in name order).
	IDs    map[party.ID]edparty.ID
	Secret *eddsa.SecretShare
	Public *eddsa.Public
}

// PublicKey returns the group's 32-byte RFC 8032 public key.
func (s *Ed25519Share) PublicKey() []byte { return s.Public.GroupKey.ToEd25519() }

// Ed25519Keygen runs FROST-Ed25519 key generation among parties; threshold
// is Sigil's t.
func (r *Runner) Ed25519Keygen(ctx context.Context, sessionID []byte, self party.ID, parties []party.ID, threshold int, tr Transport) (*Ed25519Share, error) {
	ids, err := checkKeygen(sessionID, self, parties, threshold)
	if err != nil {
		return nil, err
	}
	index := make(map[party.ID]edparty.ID, len(ids))
	all := make([]edparty.ID, 0, len(ids))
	for i, id := range ids {
		index[id] = edparty.ID(i + 1)
		all = append(all, edparty.ID(i+1))
	}
	st, out, err := edfrost.NewKeygenState(index[self], edparty.NewIDSlice(all), edparty.Size(threshold-1), edTimeout)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if err := r.runEd(ctx, st, self, index, ids, tr); err != nil {
		return nil, err
	}
	sh := &Ed25519Share{IDs: index, Secret: out.SecretKey, Public: out.Public}
	if sh.Secret == nil || sh.Public == nil || sh.Public.GroupKey == nil || len(sh.Public.Shares) != len(ids) {
		return nil, fmt.Errorf("%w: incomplete keygen output", ErrBadResult)
	}
	return sh, nil
}

// Ed25519Sign runs FROST-Ed25519 signing of msg by signers and returns the
// 64-byte RFC 8032 signature, verified with crypto/ed25519.
func (r *Runner) Ed25519Sign(ctx context.Context, sh *Ed25519Share, self party.ID, signers []party.ID, msg []byte, tr Transport) ([]byte, error) {
	if sh == nil || sh.Secret == nil || sh.Public == nil {
		return nil, fmt.Errorf("%w: nil share", ErrInvalidArgument)
	}
	if len(msg) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrInvalidArgument)
	}
	ids, err := checkParties(self, signers)
	if err != nil {
		return nil, err
	}
	quorum := make([]edparty.ID, 0, len(ids))
	for _, id := range ids {
		i, ok := sh.IDs[id]
		if !ok {
			return nil, fmt.Errorf("%w: signer %s holds no share of this key", ErrInvalidArgument, id)
		}
		quorum = append(quorum, i)
	}
	if len(ids) < int(sh.Public.Threshold)+1 {
		return nil, fmt.Errorf("%w: %d signers, key needs %d", ErrInvalidArgument, len(ids), sh.Public.Threshold+1)
	}
	m := bytes.Clone(msg)
	st, out, err := edfrost.NewSignState(edparty.NewIDSlice(quorum), sh.Secret, sh.Public, m, edTimeout)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	if err := r.runEd(ctx, st, self, sh.IDs, ids, tr); err != nil {
		return nil, err
	}
	if out.Signature == nil {
		return nil, fmt.Errorf("%w: no signature", ErrBadResult)
	}
	sig := out.Signature.ToEd25519()
	if !ed25519.Verify(sh.PublicKey(), m, sig) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrBadResult)
	}
	return sig, nil
}

// runEd connects a frost-ed25519 state machine to the transport until it
// finishes. The library's messages carry their sender's index; one whose
// index is not the transport-authenticated sender's is dropped.
func (r *Runner) runEd(ctx context.Context, st *edstate.State, self party.ID, index map[party.ID]edparty.ID, quorum party.IDSlice, tr Transport) error {
	names := make(map[edparty.ID]party.ID, len(index))
	for name, i := range index {
		names[i] = name
	}
	others := quorum.Remove(self)
	send := func(msgs []*edmessages.Message) error {
		for _, m := range msgs {
			data, err := m.MarshalBinary()
			if err != nil {
				return fmt.Errorf("mpc: marshal message: %w", err)
			}
			to := others
			if !m.IsBroadcast() {
				to = party.IDSlice{names[m.To]}
			}
			for _, id := range to {
				if err := tr.Send(ctx, id, data); err != nil {
					return fmt.Errorf("mpc: send to %s: %w", id, err)
				}
			}
		}
		return nil
	}
	// The library refuses a message of the next round from a party whose
	// message of this round it holds ("already received") instead of
	// queueing it, which a relay delivering as fast as peers send makes
	// routine. Such messages are kept here and offered again each time a
	// round completes; a true duplicate just stays refused (bounded).
	var deferred []*edmessages.Message
	advance := func() error {
		for {
			out := st.ProcessAll()
			if len(out) == 0 {
				return nil
			}
			if err := send(out); err != nil {
				return err
			}
			kept := deferred[:0]
			for _, m := range deferred {
				if st.HandleMessage(m) != nil {
					kept = append(kept, m)
				}
			}
			deferred = kept
		}
	}
	if err := advance(); err != nil {
		return err
	}
	limit := r.MaxMessageSize
	if limit <= 0 {
		limit = DefaultMaxMessageSize
	}
	for {
		select {
		case <-st.Done():
			return edAbort(st.Err(), names)
		case <-ctx.Done():
			return context.Cause(ctx)
		case p, ok := <-tr.Incoming():
			if !ok {
				return ErrTransportClosed
			}
			m, err := decodeEd(p, index, self, limit)
			if err != nil {
				r.logDrop(ctx, p, err)
				continue
			}
			if err := st.HandleMessage(m); err != nil {
				if len(deferred) >= maxDeferred {
					r.logDrop(ctx, p, err)
					continue
				}
				deferred = append(deferred, m)
				continue
			}
			if err := advance(); err != nil {
				return err
			}
		}
	}
}

// decodeEd parses a frost-ed25519 message and checks its claimed sender.
func decodeEd(p Packet, index map[party.ID]edparty.ID, self party.ID, limit int) (m *edmessages.Message, err error) {
	if len(p.Data) == 0 || len(p.Data) > limit {
		return nil, errTooLarge
	}
	defer func() {
		if recover() != nil {
			m, err = nil, errUndecodable
		}
	}()
	var msg edmessages.Message
	if err := msg.UnmarshalBinary(p.Data); err != nil {
		return nil, errUndecodable
	}
	if from, ok := index[p.From]; !ok || msg.From != from {
		return nil, errSpoofedSender
	}
	if !msg.IsBroadcast() && msg.To != index[self] {
		return nil, errMisrouted
	}
	return &msg, nil
}

// edAbort turns the library's error into an AbortError naming the culprit.
func edAbort(err error, names map[edparty.ID]party.ID) error {
	if err == nil {
		return nil
	}
	var e *edstate.Error
	if errors.As(err, &e) && e.PartyID != 0 {
		if name, ok := names[e.PartyID]; ok {
			return &AbortError{Culprits: []party.ID{name}, Err: err}
		}
	}
	return &AbortError{Err: err}
}

// ed25519Stored is the stored form of an Ed25519Share.
type ed25519Stored struct {
	IDs    map[string]uint16 `json:"ids"`
	Share  []byte            `json:"share"` // the secret share
	Public *eddsa.Public     `json:"public"`
}

// MarshalEd25519 encodes sh for storage. The result holds the secret
// share: the caller seals and clears it.
func MarshalEd25519(sh *Ed25519Share) ([]byte, error) {
	secret, err := sh.Secret.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	s := ed25519Stored{IDs: map[string]uint16{}, Share: secret, Public: sh.Public}
	for name, i := range sh.IDs {
		s.IDs[string(name)] = uint16(i)
	}
	return json.Marshal(s)
}

// UnmarshalEd25519 decodes what MarshalEd25519 made.
func UnmarshalEd25519(data []byte) (*Ed25519Share, error) {
	var s ed25519Stored
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("mpc: decode ed25519 share: %w", err)
	}
	defer clear(s.Share)
	sh := &Ed25519Share{IDs: map[party.ID]edparty.ID{}, Secret: &eddsa.SecretShare{}, Public: s.Public}
	if err := sh.Secret.UnmarshalBinary(s.Share); err != nil {
		return nil, fmt.Errorf("mpc: decode ed25519 share: %w", err)
	}
	if sh.Public == nil || sh.Public.GroupKey == nil {
		return nil, errors.New("mpc: decode ed25519 share: no public part")
	}
	for name, i := range s.IDs {
		sh.IDs[party.ID(name)] = edparty.ID(i)
	}
	return sh, nil
}
