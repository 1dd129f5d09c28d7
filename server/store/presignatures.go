package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
)

// CeremonyPresign is a presigning ceremony: a quorum makes a presignature
// for one later signature of a wallet.
const CeremonyPresign CeremonyKind = "presign"

// Presignature states at the coordinator.
const (
	PresignatureReady   = "ready"
	PresignatureUsed    = "used"
	PresignatureDropped = "dropped"
)

// Presignature is one entry of a wallet's presignature pool: which quorum
// holds the parts of the presignature made by ceremony ID. The secret parts
// stay at the signers.
type Presignature struct {
	ID        string
	WalletID  string
	PublicKey []byte
	Signers   []string // sorted
	State     string
	UsedBy    string
	CreatedAt time.Time
}

// Presignatures is what the orchestrator needs of the presignature pools.
type Presignatures interface {
	// CreatePresignCeremony records a waiting presigning ceremony.
	CreatePresignCeremony(ctx context.Context, c *Ceremony) error
	// TakePresignature marks the oldest ready presignature of the wallet,
	// made for public key pub by a quorum among usable, used by the signing
	// ceremony ceremonyID and records it on that ceremony, in one
	// transaction. ErrNotFound when none fits. A presignature is taken
	// once, ever.
	TakePresignature(ctx context.Context, walletID string, pub []byte, usable []string, ceremonyID string) (*Presignature, error)
	// DropPresignatures drops the ready presignatures of the wallet whose
	// quorum includes signer, or made for another key than pub (pub nil:
	// any key), and returns how many.
	DropPresignatures(ctx context.Context, walletID, signer string, pub []byte) (int, error)
	// PresignTargets returns up to limit active MPC wallets with fewer than
	// perWallet ready presignatures and no presigning open, fewest first.
	PresignTargets(ctx context.Context, perWallet, limit int) ([]*Wallet, error)
	// PoolSize counts the ready presignatures of every wallet.
	PoolSize(ctx context.Context) (int, error)
}

// CreatePresignCeremony records a waiting presigning ceremony.
func (s *SQL) CreatePresignCeremony(ctx context.Context, c *Ceremony) error {
	if c.Kind != CeremonyPresign || c.SignatureID != "" {
		return errors.New("store: a presigning ceremony has kind presign and no signature")
	}
	now := s.now().UTC()
	return s.db.InTx(ctx, func(tx *sqlx.Tx) error { return s.insertWork(ctx, tx, Work{Ceremony: c}, now) })
}

type presignatureRow struct {
	ID        string `db:"id"`
	WalletID  string `db:"wallet_id"`
	PublicKey []byte `db:"public_key"`
	Signers   string `db:"signers"`
	State     string `db:"state"`
	UsedBy    string `db:"used_by"`
	CreatedAt int64  `db:"created_at"`
}

func (r *presignatureRow) presignature() *Presignature {
	return &Presignature{ID: r.ID, WalletID: r.WalletID, PublicKey: r.PublicKey, Signers: splitNames(r.Signers),
		State: r.State, UsedBy: r.UsedBy, CreatedAt: fromMicros(r.CreatedAt)}
}

// TakePresignature takes one fitting presignature. See Presignatures.
func (s *SQL) TakePresignature(ctx context.Context, walletID string, pub []byte, usable []string, ceremonyID string) (*Presignature, error) {
	var taken *Presignature
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		var rows []presignatureRow
		if err := tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT id, wallet_id, public_key, signers, state, used_by, created_at
			FROM presignatures WHERE wallet_id = ? AND state = ? ORDER BY created_at, id`), walletID, PresignatureReady); err != nil {
			return fmt.Errorf("select presignatures: %w", err)
		}
		for i := range rows {
			p := rows[i].presignature()
			if !slices.Equal(p.PublicKey, pub) || !subset(p.Signers, usable) {
				continue
			}
			now := micros(s.now())
			res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE presignatures SET state = ?, used_by = ?, updated_at = ? WHERE id = ? AND state = ?`),
				PresignatureUsed, ceremonyID, now, p.ID, PresignatureReady)
			if err != nil {
				return fmt.Errorf("take presignature: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				continue // another replica took it
			}
			res, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE ceremonies SET presignature_id = ?, updated_at = ? WHERE id = ? AND wallet_id = ? AND state = ?`),
				p.ID, now, ceremonyID, walletID, string(CeremonyWaiting))
			if err != nil {
				return fmt.Errorf("record presignature on ceremony: %w", err)
			}
			if err := expectOne(res, fmt.Errorf("%w: ceremony %s is not a waiting ceremony of wallet %s", ErrStateConflict, ceremonyID, walletID)); err != nil {
				return err
			}
			p.State, p.UsedBy = PresignatureUsed, ceremonyID
			taken = p
			return nil
		}
		return ErrNotFound
	})
	return taken, err
}

// subset reports whether every name of a is in b.
func subset(a, b []string) bool {
	for _, n := range a {
		if !slices.Contains(b, n) {
			return false
		}
	}
	return true
}

// DropPresignatures drops unusable presignatures. See Presignatures.
func (s *SQL) DropPresignatures(ctx context.Context, walletID, signer string, pub []byte) (int, error) {
	var rows []presignatureRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT id, wallet_id, public_key, signers, state, used_by, created_at
		FROM presignatures WHERE wallet_id = ? AND state = ?`), walletID, PresignatureReady); err != nil {
		return 0, fmt.Errorf("select presignatures: %w", err)
	}
	dropped := 0
	for i := range rows {
		p := rows[i].presignature()
		if (signer == "" || !slices.Contains(p.Signers, signer)) && (pub == nil || slices.Equal(p.PublicKey, pub)) {
			continue
		}
		res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE presignatures SET state = ?, updated_at = ? WHERE id = ? AND state = ?`),
			PresignatureDropped, micros(s.now()), p.ID, PresignatureReady)
		if err != nil {
			return dropped, fmt.Errorf("drop presignature: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			dropped++
		}
	}
	return dropped, nil
}

// PoolSize counts ready presignatures.
func (s *SQL) PoolSize(ctx context.Context) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM presignatures WHERE state = ?`), PresignatureReady)
	return n, err
}

// insertPresignature adds a new ready presignature (a presigning
// ceremony's success).
func (s *SQL) insertPresignature(ctx context.Context, tx *sqlx.Tx, p *Presignature, now time.Time) error {
	signers := slices.Clone(p.Signers)
	sort.Strings(signers)
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO presignatures (id, wallet_id, public_key, signers, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), p.ID, p.WalletID, p.PublicKey, joinNames(signers), PresignatureReady, micros(now), micros(now))
	if err != nil {
		return fmt.Errorf("insert presignature: %w", err)
	}
	return nil
}

// PresignTargets lists wallets whose pool is short. See Presignatures.
// Only CMP (ECDSA) wallets have presignatures, and a child wallet signs
// with its parent's shares along a path, so it has none of its own.
func (s *SQL) PresignTargets(ctx context.Context, perWallet, limit int) ([]*Wallet, error) {
	const ready = `(SELECT COUNT(*) FROM presignatures p WHERE p.wallet_id = w.id AND p.state = ?)`
	var rows []walletRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+walletColumns+` FROM wallets w
		WHERE backend = ? AND status = ? AND key_scheme = ? AND parent_wallet_id IS NULL AND `+ready+` < ?
		  AND NOT EXISTS (SELECT 1 FROM ceremonies c WHERE c.wallet_id = w.id AND c.kind = ? AND c.state IN (?, ?))
		ORDER BY `+ready+`, seq LIMIT ?`),
		string(BackendMPC), string(WalletActive), KeySchemeSecp256k1, PresignatureReady, perWallet,
		string(CeremonyPresign), string(CeremonyWaiting), string(CeremonyRunning), PresignatureReady, limit)
	if err != nil {
		return nil, fmt.Errorf("select presign targets: %w", err)
	}
	out := make([]*Wallet, len(rows))
	for i := range rows {
		out[i] = rows[i].wallet()
	}
	return out, nil
}
