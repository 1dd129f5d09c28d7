package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/hsm/escrow"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// hsmSource is where `sigil recover` finds an HSM wallet's wrapped key:
// the driver database (or a restored copy), or the hsm.age backups `sigil
// hsm backup-keys` made.
type hsmSource struct {
	keysDB           string
	backups          listFlag
	endpoint, region string
}

// recoverHSM rebuilds an HSM wallet's key offline, with no HSM, from its
// wrapped key and the escrowed master key material: the material's
// fingerprint is checked against the one the key was wrapped under, the
// blob is unwrapped in software, and the key is checked against the
// wallet's public key.
func recoverHSM(env *cliEnv, identity, walletID, masterKey string, src hsmSource) (*backup.Recovered, error) {
	switch {
	case masterKey == "":
		return nil, fmt.Errorf("%w: an HSM wallet needs --hsm-master-key", errUsage)
	case (src.keysDB == "") == (len(src.backups) == 0):
		return nil, fmt.Errorf("%w: give the HSM wallet's wrapped key with one of --hsm-keys-db or --backups", errUsage)
	case src.keysDB != "" && walletID == "":
		return nil, fmt.Errorf("%w: --hsm-keys-db needs --wallet", errUsage)
	case len(src.backups) > 0 && identity == "":
		return nil, fmt.Errorf("%w: --backups needs --identity", errUsage)
	}
	var ids []age.Identity
	if identity != "" {
		var err error
		if ids, err = loadIdentities(identity); err != nil {
			return nil, err
		}
	}
	material, err := readMasterKeyFile(masterKey, ids)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	var sh *backup.Share
	if src.keysDB != "" {
		sh, err = readWrappedKey(env.ctx, src.keysDB, walletID)
	} else {
		sh, err = readWrappedBackup(env.ctx, src, ids, walletID)
	}
	if err != nil {
		return nil, err
	}
	return unwrapWallet(sh, material)
}

func unwrapWallet(sh *backup.Share, material []byte) (*backup.Recovered, error) {
	fp, err := escrow.Fingerprint(material)
	if err != nil {
		return nil, err
	}
	if fp != sh.KeyID {
		return nil, fmt.Errorf("--hsm-master-key: this master key has fingerprint %s, but wallet %s's key was wrapped under the master key with fingerprint %s", fp, sh.WalletID, sh.KeyID)
	}
	pkcs8, err := escrow.Unwrap(material, sh.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("wallet %s: %w", sh.WalletID, err)
	}
	defer clear(pkcs8)
	scalar, err := escrow.Secp256k1Scalar(pkcs8)
	if err != nil {
		return nil, fmt.Errorf("wallet %s: %w", sh.WalletID, err)
	}
	defer clear(scalar)
	key := secp256k1.PrivKeyFromBytes(scalar)
	pub, err := hex.DecodeString(sh.PublicKey)
	if err != nil || !bytes.Equal(key.PubKey().SerializeCompressed(), pub) {
		key.Zero()
		return nil, fmt.Errorf("wallet %s: %w", sh.WalletID, backup.ErrWrongKey)
	}
	return &backup.Recovered{WalletID: sh.WalletID, KeyID: "master key " + fp, Threshold: 1, PublicKey: pub, Key: key}, nil
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

// readWrappedBackup finds one HSM wallet's hsm.age among backups.
func readWrappedBackup(ctx context.Context, src hsmSource, ids []age.Identity, walletID string) (*backup.Share, error) {
	sources, err := backupSources(ctx, src.backups, src.endpoint, src.region)
	if err != nil {
		return nil, err
	}
	shares, err := backup.Read(ctx, sources, ids, walletID)
	if err != nil {
		return nil, err
	}
	var found []*backup.Share
	wallets := map[string]bool{}
	for _, sh := range shares {
		if sh.Protocol == backup.ProtocolHSMWrapped {
			found = append(found, sh)
			wallets[sh.WalletID] = true
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("%v: no HSM wallet key backup (<wallet id>/hsm.age) found", []string(src.backups))
	case len(wallets) > 1:
		return nil, fmt.Errorf("%w (choose one with --wallet)", backup.ErrManyWallet)
	}
	return found[0], nil
}

// hsmKeysDB opens the driver database, given as a PostgreSQL URL or a
// SQLite file (which must exist: nothing is created).
func hsmKeysDB(ctx context.Context, keysDB string) (*db.DB, error) {
	cfg := db.Config{URL: keysDB}
	if !strings.HasPrefix(keysDB, "postgres://") && !strings.HasPrefix(keysDB, "postgresql://") {
		if _, err := os.Stat(keysDB); err != nil {
			return nil, err
		}
		cfg = db.Config{SQLitePath: filepath.Clean(keysDB)}
	}
	return db.Open(ctx, cfg)
}

// wrappedRow is one row of the driver's wrapped_keys, read without
// migrating or otherwise writing to the database.
type wrappedRow struct {
	WalletID    string `db:"wallet_id"`
	PublicKey   []byte `db:"public_key"`
	Wrapped     []byte `db:"wrapped"`
	Fingerprint string `db:"master_key_fingerprint"`
}

const wrappedColumns = `wallet_id, public_key, wrapped, master_key_fingerprint`

func (r wrappedRow) share() *backup.Share {
	return &backup.Share{Header: backup.Header{WalletID: r.WalletID, Signer: backup.HSMHolder, KeyScheme: backup.KeySchemeSecp256k1,
		Protocol: backup.ProtocolHSMWrapped, KeyID: r.Fingerprint, Threshold: 1, Group: []string{backup.HSMHolder},
		PublicKey: hex.EncodeToString(r.PublicKey)}, Wrapped: r.Wrapped}
}

func readWrappedKey(ctx context.Context, keysDB, walletID string) (*backup.Share, error) {
	d, err := hsmKeysDB(ctx, keysDB)
	if err != nil {
		return nil, fmt.Errorf("--hsm-keys-db: %w", err)
	}
	defer d.Close()
	var row wrappedRow
	err = d.GetContext(ctx, &row, d.Rebind(`SELECT `+wrappedColumns+` FROM wrapped_keys WHERE wallet_id = ?`), walletID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("--hsm-keys-db: no wrapped key for wallet %s", walletID)
	}
	if err != nil {
		return nil, fmt.Errorf("--hsm-keys-db: %w", err)
	}
	return row.share(), nil
}
