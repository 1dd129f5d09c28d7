package signer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// Presignature states at the signer.
const (
	presigReady = "ready"
	presigUsed  = "used"
)

// errPresigUnavailable: the ceremony names a presignature this signer
// cannot use (unknown, already used, or for another key or quorum). The
// coordinator then signs again with the full protocol.
var errPresigUnavailable = errors.New("the presignature is not available at this signer")

// presig is this signer's stored part of one presignature.
type presig struct {
	ID        string `db:"id"`
	WalletID  string `db:"wallet_id"`
	KeyEpoch  int    `db:"key_epoch"`
	Signers   string `db:"signers"`
	State     string `db:"state"`
	UsedBy    string `db:"used_by"`
	Sealed    []byte `db:"sealed"`
	CreatedAt int64  `db:"created_at"`
	UpdatedAt int64  `db:"updated_at"`
}

// presigBinding is what a presignature's KEK envelope is bound to besides
// the signer: its wallet and its own id, so one can never be opened as a
// share or as another presignature.
func presigBinding(walletID, presigID string) string { return walletID + "/presig/" + presigID }

func quorumKey(ids []party.ID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = string(id)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// putPresig stores a new ready presignature durably.
func (s *shareStore) putPresig(ctx context.Context, p *presig) error {
	now := time.Now().UnixMicro()
	p.State, p.CreatedAt, p.UpdatedAt = presigReady, now, now
	_, err := s.db.NamedExecContext(ctx, `INSERT INTO presignatures (id, wallet_id, key_epoch, signers, state, used_by, sealed, created_at, updated_at)
		VALUES (:id, :wallet_id, :key_epoch, :signers, :state, :used_by, :sealed, :created_at, :updated_at)`, p)
	if err != nil {
		return fmt.Errorf("store presignature: %w", err)
	}
	return nil
}

func (s *shareStore) getPresig(ctx context.Context, id string) (*presig, error) {
	var p presig
	err := s.db.GetContext(ctx, &p, s.db.Rebind(`SELECT id, wallet_id, key_epoch, signers, state, used_by, sealed, created_at, updated_at
		FROM presignatures WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errPresigUnavailable
	}
	if err != nil {
		return nil, fmt.Errorf("load presignature: %w", err)
	}
	return &p, nil
}

// markPresigUsed marks a ready presignature used by ceremonyID, for good,
// and forgets its secret. The database commits before it returns: only
// then may this signer release anything computed from it.
func (s *shareStore) markPresigUsed(ctx context.Context, id, ceremonyID string) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE presignatures SET state = ?, used_by = ?, sealed = NULL, updated_at = ?
		WHERE id = ? AND state = ?`), presigUsed, ceremonyID, time.Now().UnixMicro(), id, presigReady)
	if err != nil {
		return fmt.Errorf("mark presignature used: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errPresigUnavailable
	}
	return nil
}

// dropPresig deletes a ready presignature whose presigning failed.
func (s *shareStore) dropPresig(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM presignatures WHERE id = ? AND state = ?`), id, presigReady)
	return err
}

// cmpPresign is CMP presigning: this signer's part of a presignature for
// one later signature, made before the message is known.
type cmpPresign struct{}

func (cmpPresign) label() string { return "presign" }

func (cmpPresign) run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	cfg, epoch, err := s.loadShare(ctx, c.GetWalletId(), c.GetPublicKey())
	if err != nil {
		return nil, err
	}
	pre, err := s.runner.Presign(ctx, []byte(c.GetId()), cfg, parties, tr)
	if err != nil {
		return nil, err
	}
	r, err := mpc.PresignatureR(pre)
	if err != nil {
		return nil, err
	}
	if err := s.storePresig(ctx, c, epoch, parties, pre); err != nil {
		return nil, err
	}
	return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
		Output: &ceremonyv1.CompleteCeremonyRequest_Presign{Presign: &ceremonyv1.PresignOutput{R: r}}}, nil
}

// storePresig seals pre under the KEK and stores it, durably, before the
// presigning is reported.
func (s *Signer) storePresig(ctx context.Context, c *ceremonyv1.Ceremony, epoch int, parties []party.ID, pre *ecdsa.PreSignature) error {
	plain, err := mpc.MarshalPresignature(pre)
	if err != nil {
		return err
	}
	sealed, err := s.kek.Seal(presigBinding(c.GetWalletId(), c.GetId()), s.name, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("seal presignature: %w", err)
	}
	return s.shares.putPresig(ctx, &presig{ID: c.GetId(), WalletID: c.GetWalletId(), KeyEpoch: epoch, Signers: quorumKey(parties), Sealed: sealed})
}

func (cmpPresign) settle(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, state ceremonyv1.CeremonyState) {
	if state == ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED {
		s.dropPresig(ctx, c.GetId())
	}
}

func (s *Signer) dropPresig(ctx context.Context, id string) {
	if err := s.shares.dropPresig(ctx, id); err != nil {
		s.logger.ErrorContext(ctx, "drop presignature", "ceremony", id, "error", err)
	}
}

// takePresig loads and opens the presignature a signing ceremony names,
// checks it fits (wallet, key epoch, quorum), and marks it used, durably,
// before anything computed from it can leave this signer.
func (s *Signer) takePresig(ctx context.Context, c *ceremonyv1.Ceremony, epoch int, parties []party.ID) (*ecdsa.PreSignature, error) {
	p, err := s.shares.getPresig(ctx, c.GetPresignatureId())
	if err != nil {
		return nil, err
	}
	if p.State != presigReady || p.WalletID != c.GetWalletId() || p.KeyEpoch != epoch || p.Signers != quorumKey(parties) {
		return nil, fmt.Errorf("%w: %s is %s, for wallet %s epoch %d and signers %s", errPresigUnavailable, p.ID, p.State, p.WalletID, p.KeyEpoch, p.Signers)
	}
	plain, err := s.kek.Open(presigBinding(p.WalletID, p.ID), s.name, p.Sealed)
	if err != nil {
		return nil, fmt.Errorf("decrypt presignature %s: %w", p.ID, err)
	}
	pre, err := mpc.UnmarshalPresignature(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("decode presignature %s: %w", p.ID, err)
	}
	if err := s.shares.markPresigUsed(ctx, p.ID, c.GetId()); err != nil {
		return nil, err
	}
	if s.afterPresigUsed != nil {
		if err := s.afterPresigUsed(ctx); err != nil {
			return nil, err
		}
	}
	return pre, nil
}
