package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/hsm/escrow"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// recoverHSM rebuilds an HSM wallet's key offline from the driver database
// (or a restored copy) and the escrowed master key material, with no HSM:
// the master key's fingerprint is checked against the one the key was
// wrapped under, the blob is unwrapped in software, and the key is checked
// against the wallet's public key.
func recoverHSM(ctx context.Context, walletID, keysDB, masterKeyFile string, identities []age.Identity) (*backup.Recovered, string, error) {
	material, err := readMasterKeyFile(masterKeyFile, identities)
	if err != nil {
		return nil, "", err
	}
	defer clear(material)
	pub, wrapped, wantFP, err := readWrappedKey(ctx, keysDB, walletID)
	if err != nil {
		return nil, "", err
	}
	fp, err := escrow.Fingerprint(material)
	if err != nil {
		return nil, "", err
	}
	if fp != wantFP {
		return nil, "", fmt.Errorf("--hsm-master-key: this master key has fingerprint %s, but wallet %s's key was wrapped under the master key with fingerprint %s", fp, walletID, wantFP)
	}
	pkcs8, err := escrow.Unwrap(material, wrapped)
	if err != nil {
		return nil, "", fmt.Errorf("wallet %s: %w", walletID, err)
	}
	defer clear(pkcs8)
	scalar, err := escrow.Secp256k1Scalar(pkcs8)
	if err != nil {
		return nil, "", fmt.Errorf("wallet %s: %w", walletID, err)
	}
	defer clear(scalar)
	key := secp256k1.PrivKeyFromBytes(scalar)
	if !bytes.Equal(key.PubKey().SerializeCompressed(), pub) {
		key.Zero()
		return nil, "", fmt.Errorf("wallet %s: %w", walletID, backup.ErrWrongKey)
	}
	return &backup.Recovered{WalletID: walletID, Threshold: 1, PublicKey: pub, Key: key}, fp, nil
}

// readMasterKeyFile reads master key material as `sigil hsm
// generate-master-key` prints it (64 hex digits), or an age file of it
// encrypted to the recovery recipients, opened with --identity.
func readMasterKeyFile(path string, identities []age.Identity) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--hsm-master-key: %w", err)
	}
	defer clear(b)
	if !bytes.HasPrefix(b, []byte("age-encryption.org/")) {
		m, err := readMaterial(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("--hsm-master-key %s: %w", path, err)
		}
		return m, nil
	}
	if len(identities) == 0 {
		return nil, fmt.Errorf("%w: --hsm-master-key %s is age-encrypted: give the recovery identity with --identity", errUsage, path)
	}
	r, err := age.Decrypt(bytes.NewReader(b), identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("--hsm-master-key %s: %w", path, backup.ErrWrongIdentity)
		}
		return nil, fmt.Errorf("--hsm-master-key %s: %w: %v", path, backup.ErrDamaged, err) //nolint:errorlint // age's text, for the operator
	}
	m, err := readMaterial(r)
	if err != nil {
		return nil, fmt.Errorf("--hsm-master-key %s: %w", path, err)
	}
	return m, nil
}

// readWrappedKey reads one wallet's row of the driver database, without
// migrating or otherwise writing to it.
func readWrappedKey(ctx context.Context, keysDB, walletID string) (pub, wrapped []byte, fingerprint string, err error) {
	cfg := db.Config{URL: keysDB}
	if !strings.HasPrefix(keysDB, "postgres://") && !strings.HasPrefix(keysDB, "postgresql://") {
		if _, err := os.Stat(keysDB); err != nil {
			return nil, nil, "", fmt.Errorf("--hsm-keys-db: %w", err)
		}
		cfg = db.Config{SQLitePath: keysDB}
	}
	d, err := db.Open(ctx, cfg)
	if err != nil {
		return nil, nil, "", fmt.Errorf("--hsm-keys-db: %w", err)
	}
	defer d.Close()
	var row struct {
		PublicKey   []byte `db:"public_key"`
		Wrapped     []byte `db:"wrapped"`
		Fingerprint string `db:"master_key_fingerprint"`
	}
	err = d.GetContext(ctx, &row, d.Rebind(`SELECT public_key, wrapped, master_key_fingerprint FROM wrapped_keys WHERE wallet_id = ?`), walletID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, "", fmt.Errorf("--hsm-keys-db: no wrapped key for wallet %s", walletID)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("--hsm-keys-db: %w", err)
	}
	return row.PublicKey, row.Wrapped, row.Fingerprint, nil
}
