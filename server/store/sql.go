package store

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the coordinator's schema migrations, one folder per
// dialect.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// MigrationTable is the goose version table of the coordinator's schema.
const MigrationTable = "goose_server"

// SQL implements every store interface on one database.
type SQL struct {
	db  *db.DB
	now func() time.Time
}

// New returns a store on d, whose schema must be migrated (see Open).
func New(d *db.DB) *SQL {
	return &SQL{db: d, now: time.Now}
}

// Open migrates d to the current schema and returns a store on it.
func Open(ctx context.Context, d *db.DB) (*SQL, error) {
	if err := d.Migrate(ctx, Migrations(), MigrationTable); err != nil {
		return nil, fmt.Errorf("migrate coordinator database: %w", err)
	}
	return New(d), nil
}

// DB returns the underlying database.
func (s *SQL) DB() *db.DB { return s.db }

// micros converts a time to the stored form. The zero time is stored as 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func joinNames(names []string) string { return strings.Join(names, ",") }

func splitNames(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// nullString stores "" as NULL, so UNIQUE external ids allow many empties.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// nonNil stores an empty byte string rather than NULL in a NOT NULL column.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ---- tokens ----

type tokenRow struct {
	ID          string        `db:"id"`
	Hash        []byte        `db:"hash"`
	Scopes      string        `db:"scopes"`
	Description string        `db:"description"`
	Tenant      string        `db:"tenant"`
	CreatedAt   int64         `db:"created_at"`
	RevokedAt   sql.NullInt64 `db:"revoked_at"`
}

// CreateToken stores a token's hash and scopes.
func (s *SQL) CreateToken(ctx context.Context, t *Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.db.Rebind(
		`INSERT INTO api_tokens (id, hash, scopes, description, tenant, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		t.ID, t.Hash, strings.Join(t.Scopes, " "), t.Description, t.Tenant, micros(t.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return nil
}

// TokenByHash finds a token by the hash of its secret.
func (s *SQL) TokenByHash(ctx context.Context, hash []byte) (*Token, error) {
	var r tokenRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(
		`SELECT `+tokenColumns+` FROM api_tokens WHERE hash = ?`), hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select token: %w", err)
	}
	return r.token(), nil
}

// ---- wallets ----

const walletColumns = `seq, id, owner, external_id, request_hash, name, backend, key_scheme, status, failure_reason,
	public_key, mpc_threshold, mpc_signers, created_at, updated_at, chain_code, parent_wallet_id, derivation_path`

type walletRow struct {
	Seq           int64          `db:"seq"`
	ID            string         `db:"id"`
	Owner         string         `db:"owner"`
	ExternalID    sql.NullString `db:"external_id"`
	RequestHash   []byte         `db:"request_hash"`
	Name          string         `db:"name"`
	Backend       string         `db:"backend"`
	KeyScheme     string         `db:"key_scheme"`
	Status        string         `db:"status"`
	FailureReason string         `db:"failure_reason"`
	PublicKey     []byte         `db:"public_key"`
	Threshold     int            `db:"mpc_threshold"`
	Signers       string         `db:"mpc_signers"`
	CreatedAt     int64          `db:"created_at"`
	UpdatedAt     int64          `db:"updated_at"`
	ChainCode     []byte         `db:"chain_code"`
	Parent        sql.NullString `db:"parent_wallet_id"`
	Path          string         `db:"derivation_path"`
}

func (r *walletRow) wallet() *Wallet {
	return &Wallet{
		Seq: r.Seq, ID: r.ID, Owner: r.Owner, ExternalID: unscopedExternalID(r.Owner, r.ExternalID.String), RequestHash: r.RequestHash, Name: r.Name,
		Backend: Backend(r.Backend), KeyScheme: r.KeyScheme, Status: WalletStatus(r.Status),
		FailureReason: r.FailureReason, PublicKey: r.PublicKey, Threshold: r.Threshold,
		Signers: splitNames(r.Signers), CreatedAt: fromMicros(r.CreatedAt), UpdatedAt: fromMicros(r.UpdatedAt),
		ChainCode: r.ChainCode, ParentWalletID: r.Parent.String, DerivationPath: r.Path,
	}
}

// CreateWallet inserts a wallet and its work. See Wallets.
func (s *SQL) CreateWallet(ctx context.Context, w *Wallet, work Work) (*Wallet, bool, error) {
	now := s.now().UTC()
	w.CreatedAt, w.UpdatedAt = now, now
	var existing *Wallet
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if w.ExternalID != "" {
			got, err := s.walletByExternalID(ctx, tx, w.Owner, w.ExternalID)
			if err == nil {
				existing = got
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if w.ParentWalletID != "" {
			if err := s.checkParent(ctx, tx, w, work); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO wallets
			(id, owner, external_id, request_hash, name, backend, key_scheme, status, failure_reason, public_key,
			 mpc_threshold, mpc_signers, created_at, updated_at, chain_code, parent_wallet_id, derivation_path)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			w.ID, w.Owner, nullString(scopedExternalID(w.Owner, w.ExternalID)), w.RequestHash, w.Name, string(w.Backend), w.KeyScheme,
			string(w.Status), w.FailureReason, w.PublicKey, w.Threshold, joinNames(w.Signers),
			micros(now), micros(now), w.ChainCode, nullString(w.ParentWalletID), w.DerivationPath)
		if err != nil {
			return fmt.Errorf("insert wallet: %w", err)
		}
		if w.ParentWalletID != "" {
			return nil // a child wallet is active at once: there is no work
		}
		return s.insertWork(ctx, tx, work, now)
	})
	if err != nil && w.ExternalID != "" && db.IsUniqueViolation(err) {
		// A concurrent request with the same external id won the race.
		existing, err = s.walletByExternalID(ctx, s.db, w.Owner, w.ExternalID)
	}
	if err != nil {
		return nil, false, err
	}
	if existing != nil {
		if !bytes.Equal(existing.RequestHash, w.RequestHash) {
			return nil, false, ErrIdempotencyConflict
		}
		return existing, false, nil
	}
	return w, true, nil
}

// checkParent checks a child wallet against its parent in the creating
// transaction: the parent exists, is active, is no child itself, and the
// child is active with no work of its own.
func (s *SQL) checkParent(ctx context.Context, tx *sqlx.Tx, w *Wallet, work Work) error {
	if work.Ceremony != nil || work.Job != nil || w.Status != WalletActive || w.DerivationPath == "" {
		return errors.New("store: a child wallet is active at once, with a derivation path and no work")
	}
	parent, err := s.getWallet(ctx, tx, w.ParentWalletID)
	if err != nil {
		return fmt.Errorf("parent wallet %s: %w", w.ParentWalletID, err)
	}
	if parent.Status != WalletActive {
		return fmt.Errorf("%w: parent wallet %s is %s", ErrWalletNotActive, parent.ID, parent.Status)
	}
	if parent.ParentWalletID != "" {
		return fmt.Errorf("%w: wallet %s is itself a child wallet", ErrStateConflict, parent.ID)
	}
	return nil
}

func (s *SQL) walletByExternalID(ctx context.Context, q sqlx.QueryerContext, owner, externalID string) (*Wallet, error) {
	var r walletRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+walletColumns+` FROM wallets WHERE external_id = ?`),
		scopedExternalID(owner, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select wallet: %w", err)
	}
	return r.wallet(), nil
}

// GetWallet returns one wallet or ErrNotFound.
func (s *SQL) GetWallet(ctx context.Context, id string) (*Wallet, error) {
	return s.getWallet(ctx, s.db, id)
}

func (s *SQL) getWallet(ctx context.Context, q sqlx.QueryerContext, id string) (*Wallet, error) {
	var r walletRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+walletColumns+` FROM wallets WHERE id = ? AND status NOT IN `+hiddenStatuses), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select wallet: %w", err)
	}
	return r.wallet(), nil
}

// ListWallets returns up to p.Limit wallets after p.AfterSeq, oldest first.
func (s *SQL) ListWallets(ctx context.Context, f WalletFilter, p Page) ([]*Wallet, error) {
	query := `SELECT ` + walletColumns + ` FROM wallets WHERE seq > ? AND status NOT IN ` + hiddenStatuses
	args := []any{p.AfterSeq}
	if f.Status != "" {
		query += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if f.ParentWalletID != "" {
		query += ` AND parent_wallet_id = ?`
		args = append(args, f.ParentWalletID)
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, p.Limit)
	var rows []walletRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("list wallets: %w", err)
	}
	out := make([]*Wallet, len(rows))
	for i := range rows {
		out[i] = rows[i].wallet()
	}
	return out, nil
}

// ---- signatures ----

const signatureColumns = `seq, id, owner, external_id, request_hash, wallet_id, kind, hash, message, digest, status,
	failure_reason, sig_r, sig_s, recovery_id, created_at, updated_at, request_id, requester_key, signed_request, raw_message, key_scheme`

type signatureRow struct {
	Seq           int64          `db:"seq"`
	ID            string         `db:"id"`
	Owner         string         `db:"owner"`
	ExternalID    sql.NullString `db:"external_id"`
	RequestHash   []byte         `db:"request_hash"`
	WalletID      string         `db:"wallet_id"`
	Kind          string         `db:"kind"`
	Hash          []byte         `db:"hash"`
	Message       string         `db:"message"`
	Digest        []byte         `db:"digest"`
	Status        string         `db:"status"`
	FailureReason string         `db:"failure_reason"`
	R             []byte         `db:"sig_r"`
	S             []byte         `db:"sig_s"`
	RecoveryID    int            `db:"recovery_id"`
	CreatedAt     int64          `db:"created_at"`
	UpdatedAt     int64          `db:"updated_at"`
	RequestID     string         `db:"request_id"`
	RequesterKey  string         `db:"requester_key"`
	SignedRequest []byte         `db:"signed_request"`
	RawMessage    []byte         `db:"raw_message"`
	KeyScheme     string         `db:"key_scheme"`
}

func (r *signatureRow) signature() *Signature {
	return &Signature{
		Seq: r.Seq, ID: r.ID, Owner: r.Owner, ExternalID: unscopedExternalID(r.Owner, r.ExternalID.String), RequestHash: r.RequestHash, WalletID: r.WalletID,
		Kind: SignatureKind(r.Kind), Hash: r.Hash, Message: r.Message, Digest: r.Digest,
		Status: SignatureStatus(r.Status), FailureReason: r.FailureReason, R: r.R, S: r.S,
		RecoveryID: r.RecoveryID, CreatedAt: fromMicros(r.CreatedAt), UpdatedAt: fromMicros(r.UpdatedAt),
		RequestID: r.RequestID, RequesterKey: r.RequesterKey, SignedRequest: r.SignedRequest,
		RawMessage: r.RawMessage, KeyScheme: r.KeyScheme,
	}
}

// CreateSignature inserts a signature request and its work. See Signatures.
func (s *SQL) CreateSignature(ctx context.Context, sg *Signature, work Work) (*Signature, bool, error) {
	now := s.now().UTC()
	sg.CreatedAt, sg.UpdatedAt = now, now
	var existing *Signature
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if sg.ExternalID != "" {
			got, err := s.signatureByExternalID(ctx, tx, sg.Owner, sg.ExternalID)
			if err == nil {
				existing = got
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		w, err := s.getWallet(ctx, tx, sg.WalletID)
		if err != nil {
			return err
		}
		if w.Status != WalletActive {
			return fmt.Errorf("%w: wallet %s is %s", ErrWalletNotActive, w.ID, w.Status)
		}
		sg.KeyScheme = keyScheme(w.KeyScheme)
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO signatures
			(id, owner, external_id, request_hash, wallet_id, kind, hash, message, digest, status, created_at, updated_at,
			request_id, requester_key, signed_request, raw_message, key_scheme)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			sg.ID, sg.Owner, nullString(scopedExternalID(sg.Owner, sg.ExternalID)), sg.RequestHash, sg.WalletID, string(sg.Kind), sg.Hash, sg.Message,
			nonNil(sg.Digest), string(sg.Status), micros(now), micros(now), sg.RequestID, sg.RequesterKey, sg.SignedRequest,
			sg.RawMessage, keyScheme(w.KeyScheme))
		if err != nil {
			return fmt.Errorf("insert signature: %w", err)
		}
		return s.insertWork(ctx, tx, work, now)
	})
	if err != nil && sg.ExternalID != "" && db.IsUniqueViolation(err) {
		existing, err = s.signatureByExternalID(ctx, s.db, sg.Owner, sg.ExternalID)
	}
	if err != nil {
		return nil, false, err
	}
	if existing != nil {
		if !bytes.Equal(existing.RequestHash, sg.RequestHash) {
			return nil, false, ErrIdempotencyConflict
		}
		return existing, false, nil
	}
	return sg, true, nil
}

func (s *SQL) signatureByExternalID(ctx context.Context, q sqlx.QueryerContext, owner, externalID string) (*Signature, error) {
	var r signatureRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+signatureColumns+` FROM signatures WHERE external_id = ?`),
		scopedExternalID(owner, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select signature: %w", err)
	}
	return r.signature(), nil
}

// GetSignature returns one signature request or ErrNotFound.
func (s *SQL) GetSignature(ctx context.Context, id string) (*Signature, error) {
	return s.getSignature(ctx, s.db, id)
}

func (s *SQL) getSignature(ctx context.Context, q sqlx.QueryerContext, id string) (*Signature, error) {
	var r signatureRow
	err := sqlx.GetContext(ctx, q, &r, s.db.Rebind(`SELECT `+signatureColumns+` FROM signatures WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("select signature: %w", err)
	}
	return r.signature(), nil
}

// ListSignatures returns up to p.Limit requests after p.AfterSeq, oldest first.
func (s *SQL) ListSignatures(ctx context.Context, f SignatureFilter, p Page) ([]*Signature, error) {
	query := `SELECT ` + signatureColumns + ` FROM signatures WHERE seq > ?`
	args := []any{p.AfterSeq}
	if f.WalletID != "" {
		query += ` AND wallet_id = ?`
		args = append(args, f.WalletID)
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, p.Limit)
	var rows []signatureRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("list signatures: %w", err)
	}
	out := make([]*Signature, len(rows))
	for i := range rows {
		out[i] = rows[i].signature()
	}
	return out, nil
}

// ---- work ----

// insertWork records the ceremony or job that will serve a new wallet or
// signature, in the caller's transaction.
func (s *SQL) insertWork(ctx context.Context, tx *sqlx.Tx, work Work, now time.Time) error {
	switch {
	case work.Ceremony != nil && work.Job == nil:
		c := work.Ceremony
		c.CreatedAt, c.UpdatedAt = now, now
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO ceremonies
			(id, kind, key_scheme, wallet_id, signature_id, state, threshold, group_signers, parties, excluded, attempt,
			 deadline, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.ID, string(c.Kind), keyScheme(c.KeyScheme), c.WalletID, nullString(c.SignatureID), string(c.State), c.Threshold,
			joinNames(c.GroupSigners), joinNames(c.Parties), joinNames(c.Excluded), c.Attempt,
			micros(c.Deadline), micros(now), micros(now))
		if err != nil {
			return fmt.Errorf("insert ceremony: %w", err)
		}
		return nil
	case work.Job != nil && work.Ceremony == nil:
		j := work.Job
		j.CreatedAt, j.UpdatedAt = now, now
		if j.AvailableAt.IsZero() {
			j.AvailableAt = now
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO jobs
			(id, kind, wallet_id, signature_id, state, available_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			j.ID, string(j.Kind), j.WalletID, nullString(j.SignatureID), string(j.State),
			micros(j.AvailableAt), micros(now), micros(now))
		if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		return nil
	default:
		return errors.New("store: work must be exactly one of a ceremony or a job")
	}
}

var errNoRows = sql.ErrNoRows

// keyScheme defaults an unset scheme to the one every wallet had before
// schemes were recorded on ceremonies.
func keyScheme(s string) string {
	if s == "" {
		return KeySchemeSecp256k1
	}
	return s
}
