package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/sigil-wallet/sigil/signer/backup"
)

func hsmBackupKeysCommand() *command {
	return &command{
		name:    "hsm backup-keys",
		summary: "copy every HSM wallet's wrapped key, age-encrypted, to the backup target",
		usage: `Reads the wrapped keys of the driver database (without writing to it) and stores
each, encrypted with age to --backup-recipients, as <prefix>/<wallet id>/hsm.age
in --backup-dir or --backup-s3-bucket: the same recipients, targets and layout
as the MPC signers' share backups. Run it after HSM wallets are created (from
cron, say); storing a key again is harmless.

A wrapped key is useless without the HSM master key: escrow that too (see the
README's recovery runbook); "sigil recover --backups ... --hsm-master-key ..."
then rebuilds a wallet's key with no HSM.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var cfg backup.Config
			var databaseURL, dataDir string
			fs.StringVar(&databaseURL, "database-url", "", "PostgreSQL driver database (postgres://...); empty uses SQLite in --data-dir")
			fs.StringVar(&dataDir, "data-dir", "./sigil-hsm-driver", "folder of the SQLite driver database (hsm-driver.db) when --database-url is empty")
			addBackupFlags(fs, &cfg)
			return func() error {
				if !cfg.Enabled() {
					return fmt.Errorf("%w: --backup-recipients and --backup-dir or --backup-s3-bucket are required", errUsage)
				}
				if err := checkBackupFlags(cfg); err != nil {
					return err
				}
				keysDB := databaseURL
				if keysDB == "" {
					keysDB = filepath.Join(dataDir, "hsm-driver.db")
				}
				n, where, err := backupWrappedKeys(env, cfg, keysDB)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "backed up the wrapped keys of %d HSM wallets to %s\n", n, where)
				return nil
			}
		},
	}
}

func backupWrappedKeys(env *cliEnv, cfg backup.Config, keysDB string) (int, string, error) {
	recipients, _, err := backup.LoadRecipients(cfg.RecipientsFile)
	if err != nil {
		return 0, "", err
	}
	target, err := backup.NewTarget(env.ctx, cfg)
	if err != nil {
		return 0, "", err
	}
	d, err := hsmKeysDB(env.ctx, keysDB)
	if err != nil {
		return 0, "", fmt.Errorf("driver database: %w", err)
	}
	defer d.Close()
	var rows []wrappedRow
	if err := d.SelectContext(env.ctx, &rows, `SELECT `+wrappedColumns+` FROM wrapped_keys ORDER BY wallet_id`); err != nil {
		return 0, "", fmt.Errorf("driver database: %w", err)
	}
	var errs []error
	for _, r := range rows {
		file, err := backup.EncryptWrapped(recipients, r.WalletID, r.PublicKey, r.Wrapped, r.Fingerprint, time.Now())
		if err == nil {
			err = target.Put(env.ctx, backup.Name(r.WalletID, backup.HSMHolder), file)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("wallet %s (%s): %w", r.WalletID, target.Location(backup.Name(r.WalletID, backup.HSMHolder)), err))
		}
	}
	if len(errs) > 0 {
		return 0, "", fmt.Errorf("%d of %d wrapped keys not backed up: %w", len(errs), len(rows), errors.Join(errs...))
	}
	return len(rows), target.Location(""), nil
}
