package driver

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
)

//go:embed migrations
var migrations embed.FS

// MigrationTable is the goose version table of the driver database, which
// may share a PostgreSQL database with the coordinator.
const MigrationTable = "goose_hsm_driver"

// ErrNoKey means the driver database holds no wrapped key for a wallet.
var ErrNoKey = errors.New("no wrapped key for this wallet in the driver database")

// WrappedKey is one wallet's key as the HSM wrapped it.
type WrappedKey struct {
	WalletID             string
	PublicKey            []byte // 33-byte compressed
	Wrapped              []byte // CKM_AES_KEY_WRAP_PAD of the PKCS#8 private key
	MasterKeyFingerprint string // hsm.MasterKeyFingerprint of the wrapping key
	// AttestationKeyID and Attestation are the generating HSM's attestation
	// of the key for this wallet (see internal/attest); empty for keys
	// stored before attestation existed.
	AttestationKeyID, Attestation []byte
	CreatedAt                     time.Time
}

// KeyStore is the driver database: wrapped keys by wallet id. PostgreSQL
// when several drivers share it, SQLite for a single driver.
type KeyStore struct {
	db *db.DB
}

// OpenKeyStore migrates d and returns the store on it.
func OpenKeyStore(ctx context.Context, d *db.DB) (*KeyStore, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := d.Migrate(ctx, sub, MigrationTable); err != nil {
		return nil, fmt.Errorf("migrate driver database: %w", err)
	}
	return &KeyStore{db: d}, nil
}

// DB returns the underlying database.
func (k *KeyStore) DB() *db.DB { return k.db }

type keyRow struct {
	WalletID    string `db:"wallet_id"`
	PublicKey   []byte `db:"public_key"`
	Wrapped     []byte `db:"wrapped"`
	Fingerprint string `db:"master_key_fingerprint"`
	AttestKeyID []byte `db:"attestation_key_id"`
	Attestation []byte `db:"attestation"`
	CreatedAt   int64  `db:"created_at"`
}

// Get returns a wallet's wrapped key, or ErrNoKey.
func (k *KeyStore) Get(ctx context.Context, walletID string) (*WrappedKey, error) {
	var r keyRow
	err := k.db.GetContext(ctx, &r, k.db.Rebind(`SELECT wallet_id, public_key, wrapped, master_key_fingerprint,
		attestation_key_id, attestation, created_at FROM wrapped_keys WHERE wallet_id = ?`), walletID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: wallet %s", ErrNoKey, walletID)
	}
	if err != nil {
		return nil, fmt.Errorf("read wrapped key of wallet %s: %w", walletID, err)
	}
	return &WrappedKey{
		WalletID: r.WalletID, PublicKey: r.PublicKey, Wrapped: r.Wrapped,
		MasterKeyFingerprint: r.Fingerprint, AttestationKeyID: r.AttestKeyID, Attestation: r.Attestation, CreatedAt: time.UnixMicro(r.CreatedAt).UTC(),
	}, nil
}

// Put stores a wallet's wrapped key durably and returns the key the wallet
// now has: key itself, or the one another attempt stored first (two drivers
// can run the same keygen job when a lease lapses; the first key stored
// wins, and both report it).
//
// On SQLite the write is made with synchronous=FULL, so it survives a power
// loss, not only a crash, before the coordinator hears of the key: the
// database's default (NORMAL in WAL mode) may lose the last commits.
func (k *KeyStore) Put(ctx context.Context, key *WrappedKey) (*WrappedKey, error) {
	if key.CreatedAt.IsZero() {
		key.CreatedAt = time.Now().UTC()
	}
	conn, err := k.db.Connx(ctx)
	if err != nil {
		return nil, fmt.Errorf("store wrapped key: %w", err)
	}
	defer conn.Close()
	if k.db.Dialect == db.SQLite {
		// Per connection; the connection goes back to the pool with it,
		// which only makes later writes safer.
		if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
			return nil, fmt.Errorf("store wrapped key: %w", err)
		}
	}
	_, err = conn.ExecContext(ctx, k.db.Rebind(`INSERT INTO wrapped_keys
		(wallet_id, public_key, wrapped, master_key_fingerprint, attestation_key_id, attestation, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`),
		key.WalletID, key.PublicKey, key.Wrapped, key.MasterKeyFingerprint, key.AttestationKeyID, key.Attestation, key.CreatedAt.UnixMicro())
	if err == nil {
		return key, nil
	}
	if !db.IsUniqueViolation(err) {
		return nil, fmt.Errorf("store wrapped key of wallet %s: %w", key.WalletID, err)
	}
	return k.Get(ctx, key.WalletID)
}
