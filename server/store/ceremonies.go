package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

// Ceremonies is what the MPC orchestrator and the ceremony service need.
type Ceremonies interface {
	GetCeremony(ctx context.Context, id string) (*Ceremony, error)
	// OpenCeremonies returns every waiting or running ceremony, oldest first.
	OpenCeremonies(ctx context.Context) ([]*Ceremony, error)
	// StartCeremony moves a waiting ceremony to running with its parties.
	StartCeremony(ctx context.Context, id string, parties []string, deadline time.Time) error
	// RecordReport stores one signer's report; a second report by the same
	// signer, or a report on a ceremony that is not running, is
	// ErrStateConflict.
	RecordReport(ctx context.Context, r *CeremonyReport) error
	Reports(ctx context.Context, ceremonyID string) ([]*CeremonyReport, error)
	// FinishCeremony ends a running or waiting ceremony and applies its
	// outcome to the wallet or signature, in one transaction, and deletes
	// the ceremony's relayed messages. It is ErrStateConflict when the
	// ceremony already ended.
	FinishCeremony(ctx context.Context, f *CeremonyFinish) error
}

// CeremonyReport is what one signer reported.
type CeremonyReport struct {
	CeremonyID string
	Signer     string
	OK         bool
	Output     []byte // keygen: public key; sign: r||s
	Reason     string
	Rejected   bool
	CreatedAt  time.Time
}

// CeremonyFinish is how a ceremony ends and what follows from it. The
// ceremony kind's handler at the coordinator decides the outcome; the store
// applies it as given, in the transaction that ends the ceremony.
type CeremonyFinish struct {
	CeremonyID string
	State      CeremonyState // CeremonySucceeded or CeremonyFailed
	Reason     string
	// Wallet, when set, finishes the ceremony's creating wallet.
	Wallet *WalletOutcome
	// Signature, when set, finishes the ceremony's pending signature.
	Signature *SignatureOutcome
	// Presignature, when set, joins its wallet's pool (a presigning
	// ceremony's success).
	Presignature *Presignature
	// Lease, when set, fences the change: it applies only while the
	// ceremony's lease epoch is still Lease.Epoch (ErrLeaseLost otherwise),
	// so a replica that lost its lease cannot end the ceremony.
	Lease *Lease
	// Retry, when set, is a new waiting ceremony of the same kind for the
	// same wallet and signature (id, attempt and exclusions given; the rest
	// copied from the ceremony that ends).
	Retry *Ceremony
}

// WalletOutcome moves a creating wallet to active (with PublicKey) or
// failed (with Reason).
type WalletOutcome struct {
	Status    WalletStatus
	PublicKey []byte
	ChainCode []byte // BIP-32 chain code of the key, when it has one
	Reason    string
}

// SignatureOutcome moves a pending signature to signed (with R, S and
// RecoveryID), failed or rejected (with Reason).
type SignatureOutcome struct {
	Status     SignatureStatus
	R, S       []byte
	RecoveryID int
	Reason     string
}

const ceremonyColumns = `seq, id, kind, key_scheme, wallet_id, signature_id, state, threshold, group_signers, parties, excluded,
	attempt, deadline, failure_reason, presignature_id, lease_owner, lease_epoch, lease_until, created_at, updated_at`

type ceremonyRow struct {
	Seq            int64          `db:"seq"`
	ID             string         `db:"id"`
	Kind           string         `db:"kind"`
	KeyScheme      string         `db:"key_scheme"`
	WalletID       string         `db:"wallet_id"`
	SignatureID    sql.NullString `db:"signature_id"`
	State          string         `db:"state"`
	Threshold      int            `db:"threshold"`
	GroupSigners   string         `db:"group_signers"`
	Parties        string         `db:"parties"`
	Excluded       string         `db:"excluded"`
	Attempt        int            `db:"attempt"`
	Deadline       int64          `db:"deadline"`
	FailureReason  string         `db:"failure_reason"`
	PresignatureID string         `db:"presignature_id"`
	LeaseOwner     string         `db:"lease_owner"`
	LeaseEpoch     int64          `db:"lease_epoch"`
	LeaseUntil     int64          `db:"lease_until"`
	CreatedAt      int64          `db:"created_at"`
	UpdatedAt      int64          `db:"updated_at"`
}

func (r *ceremonyRow) ceremony() *Ceremony {
	return &Ceremony{
		Seq: r.Seq, ID: r.ID, Kind: CeremonyKind(r.Kind), KeyScheme: r.KeyScheme, WalletID: r.WalletID, SignatureID: r.SignatureID.String,
		State: CeremonyState(r.State), Threshold: r.Threshold, GroupSigners: splitNames(r.GroupSigners),
		Parties: splitNames(r.Parties), Excluded: splitNames(r.Excluded), Attempt: r.Attempt,
		Deadline: fromMicros(r.Deadline), FailureReason: r.FailureReason, PresignatureID: r.PresignatureID,
		Lease:     Lease{Owner: r.LeaseOwner, Epoch: r.LeaseEpoch, Until: fromMicros(r.LeaseUntil)},
		CreatedAt: fromMicros(r.CreatedAt), UpdatedAt: fromMicros(r.UpdatedAt),
	}
}

// GetCeremony returns one ceremony or ErrNotFound.
func (s *SQL) GetCeremony(ctx context.Context, id string) (*Ceremony, error) {
	return s.getCeremony(ctx, s.db, id)
}

func (s *SQL) getCeremony(ctx context.Context, q sqlx.QueryerContext, id string) (*Ceremony, error) {
	var r ceremonyRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+ceremonyColumns+` FROM ceremonies WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select ceremony: %w", err)
	}
	return r.ceremony(), nil
}

// OpenCeremonies returns waiting and running ceremonies, oldest first.
func (s *SQL) OpenCeremonies(ctx context.Context) ([]*Ceremony, error) {
	var rows []ceremonyRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+ceremonyColumns+` FROM ceremonies
		WHERE state IN (?, ?) ORDER BY seq`), string(CeremonyWaiting), string(CeremonyRunning))
	if err != nil {
		return nil, fmt.Errorf("list open ceremonies: %w", err)
	}
	out := make([]*Ceremony, len(rows))
	for i := range rows {
		out[i] = rows[i].ceremony()
	}
	return out, nil
}

// StartCeremony moves a waiting ceremony to running.
func (s *SQL) StartCeremony(ctx context.Context, id string, parties []string, deadline time.Time) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE ceremonies SET state = ?, parties = ?, deadline = ?, updated_at = ?
		WHERE id = ? AND state = ?`),
		string(CeremonyRunning), joinNames(parties), micros(deadline), micros(s.now()), id, string(CeremonyWaiting))
	if err != nil {
		return fmt.Errorf("start ceremony %s: %w", id, err)
	}
	return expectOne(res, fmt.Errorf("%w: ceremony %s is not waiting", ErrStateConflict, id))
}

func expectOne(res sql.Result, conflict error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return conflict
	}
	return nil
}

// RecordReport stores one signer's report on a running ceremony.
func (s *SQL) RecordReport(ctx context.Context, r *CeremonyReport) error {
	r.CreatedAt = s.now().UTC()
	return s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		c, err := s.getCeremony(ctx, tx, r.CeremonyID)
		if err != nil {
			return err
		}
		if c.State != CeremonyRunning {
			return fmt.Errorf("%w: ceremony %s is %s", ErrStateConflict, c.ID, c.State)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO ceremony_reports
			(ceremony_id, signer, ok, output, reason, rejected, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			r.CeremonyID, r.Signer, boolInt(r.OK), r.Output, r.Reason, boolInt(r.Rejected), micros(r.CreatedAt))
		if err != nil {
			if db.IsUniqueViolation(err) {
				return fmt.Errorf("%w: %s already reported on ceremony %s", ErrStateConflict, r.Signer, r.CeremonyID)
			}
			return fmt.Errorf("insert report: %w", err)
		}
		return nil
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Reports returns the reports on a ceremony, in the order they came.
func (s *SQL) Reports(ctx context.Context, ceremonyID string) ([]*CeremonyReport, error) {
	var rows []struct {
		CeremonyID string `db:"ceremony_id"`
		Signer     string `db:"signer"`
		OK         int    `db:"ok"`
		Output     []byte `db:"output"`
		Reason     string `db:"reason"`
		Rejected   int    `db:"rejected"`
		CreatedAt  int64  `db:"created_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT ceremony_id, signer, ok, output, reason, rejected, created_at
		FROM ceremony_reports WHERE ceremony_id = ? ORDER BY created_at, signer`), ceremonyID)
	if err != nil {
		return nil, fmt.Errorf("select reports: %w", err)
	}
	out := make([]*CeremonyReport, len(rows))
	for i, r := range rows {
		out[i] = &CeremonyReport{CeremonyID: r.CeremonyID, Signer: r.Signer, OK: r.OK == 1, Output: r.Output,
			Reason: r.Reason, Rejected: r.Rejected == 1, CreatedAt: fromMicros(r.CreatedAt)}
	}
	return out, nil
}

// FinishCeremony ends a ceremony and applies its outcome. See Ceremonies.
func (s *SQL) FinishCeremony(ctx context.Context, f *CeremonyFinish) error {
	now := s.now().UTC()
	return s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		c, err := s.getCeremony(ctx, tx, f.CeremonyID)
		if err != nil {
			return err
		}
		if f.Lease != nil && c.Lease.Epoch != f.Lease.Epoch {
			return fmt.Errorf("%w: ceremony %s is at lease epoch %d (%s), not %d", ErrLeaseLost, c.ID, c.Lease.Epoch, c.Lease.Owner, f.Lease.Epoch)
		}
		epoch := c.Lease.Epoch
		if f.Lease != nil {
			epoch = f.Lease.Epoch
		}
		// The epoch in the WHERE clause fences a takeover that commits
		// between the read above and this write.
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE ceremonies SET state = ?, failure_reason = ?, updated_at = ?
			WHERE id = ? AND state IN (?, ?) AND lease_epoch = ?`),
			string(f.State), f.Reason, micros(now), c.ID, string(CeremonyWaiting), string(CeremonyRunning), epoch)
		if err != nil {
			return fmt.Errorf("finish ceremony %s: %w", c.ID, err)
		}
		if err := expectOne(res, fmt.Errorf("%w: ceremony %s already ended or changed hands", ErrStateConflict, c.ID)); err != nil {
			return err
		}
		// The relay keeps messages only while their ceremony runs.
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM relay_messages WHERE ceremony_id = ?`), c.ID); err != nil {
			return fmt.Errorf("delete relayed messages: %w", err)
		}
		if err := s.applyWalletOutcome(ctx, tx, c, f.Wallet, now); err != nil {
			return err
		}
		if err := s.applySignatureOutcome(ctx, tx, c, f.Signature, now); err != nil {
			return err
		}
		if p := f.Presignature; p != nil {
			if err := s.insertPresignature(ctx, tx, p, now); err != nil {
				return err
			}
		}
		if r := f.Retry; r != nil {
			r.Kind, r.KeyScheme, r.WalletID, r.SignatureID, r.State = c.Kind, c.KeyScheme, c.WalletID, c.SignatureID, CeremonyWaiting
			r.Threshold, r.GroupSigners = c.Threshold, c.GroupSigners
			return s.insertWork(ctx, tx, Work{Ceremony: r}, now)
		}
		return nil
	})
}

// applyWalletOutcome finishes the ceremony's wallet. A wallet already
// finished another way is left alone: the ceremony still ends, rather than
// run on with nothing left to decide.
func (s *SQL) applyWalletOutcome(ctx context.Context, tx *sqlx.Tx, c *Ceremony, o *WalletOutcome, now time.Time) error {
	if o == nil {
		return nil
	}
	var err error
	switch o.Status {
	// A pooled key's generation leaves it pooled (or failed), never
	// visible: see KeyPool.
	case WalletActive:
		if want := PublicKeyLen(keyScheme(c.KeyScheme)); len(o.PublicKey) != want {
			return fmt.Errorf("ceremony %s: public key is %d bytes, want %d", c.ID, len(o.PublicKey), want)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE wallets SET status = CASE WHEN status = ? THEN ? ELSE ? END,
			public_key = ?, chain_code = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)`),
			string(WalletPooling), string(WalletPooled), string(WalletActive),
			o.PublicKey, o.ChainCode, micros(now), c.WalletID, string(WalletCreating), string(WalletPooling))
	case WalletFailed:
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE wallets SET status = CASE WHEN status = ? THEN ? ELSE ? END,
			failure_reason = ?, updated_at = ? WHERE id = ? AND status IN (?, ?)`),
			string(WalletPooling), string(WalletPoolFailed), string(WalletFailed),
			o.Reason, micros(now), c.WalletID, string(WalletCreating), string(WalletPooling))
	default:
		return fmt.Errorf("ceremony %s: a wallet cannot end %q", c.ID, o.Status)
	}
	if err != nil {
		return fmt.Errorf("update wallet %s: %w", c.WalletID, err)
	}
	return nil
}

// applySignatureOutcome finishes the ceremony's signature; as for wallets,
// one finished another way is left alone.
func (s *SQL) applySignatureOutcome(ctx context.Context, tx *sqlx.Tx, c *Ceremony, o *SignatureOutcome, now time.Time) error {
	if o == nil {
		return nil
	}
	if c.SignatureID == "" {
		return fmt.Errorf("ceremony %s has no signature to finish", c.ID)
	}
	var err error
	switch o.Status {
	case SignatureSigned:
		if len(o.R) != 32 || len(o.S) != 32 {
			return fmt.Errorf("ceremony %s: r and s must be 32 bytes", c.ID)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE signatures SET status = ?, sig_r = ?, sig_s = ?, recovery_id = ?, updated_at = ?
			WHERE id = ? AND status = ?`),
			string(SignatureSigned), o.R, o.S, o.RecoveryID, micros(now), c.SignatureID, string(SignaturePending))
	case SignatureFailed, SignatureRejected:
		_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE signatures SET status = ?, failure_reason = ?, updated_at = ?
			WHERE id = ? AND status = ?`),
			string(o.Status), o.Reason, micros(now), c.SignatureID, string(SignaturePending))
	default:
		return fmt.Errorf("ceremony %s: a signature cannot end %q", c.ID, o.Status)
	}
	if err != nil {
		return fmt.Errorf("update signature %s: %w", c.SignatureID, err)
	}
	return nil
}
