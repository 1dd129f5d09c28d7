package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sigil-wallet/sigil/internal/observe"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/kek"
)

func signerCommand() *command {
	return &command{
		name:    "signer",
		summary: "run an MPC signer: hold key shares and take part in key generation and signing",
		usage: `Runs one MPC signer. It dials the coordinator's node port over mTLS with a
signer certificate ("sigil pki issue --role signer"; its name must be one of the
coordinator's --mpc-signers), only ever dialing out, and runs the key generation
and signing ceremonies the coordinator hands it. Its key shares live in its own
database, each encrypted with its KEK (--kek-file, made by "sigil signer init").
Messages to other signers are sealed end to end: the coordinator relays
ciphertext only.

The signer decides what it signs: with --trusted-request-keys it signs only
requests signed end to end by one of those request keys (and refuses expired,
mismatched and replayed ones); with --validation-gate-url it asks the operator's
gate first. Every decision goes into its hash-chained journal, durably before it
signs ("sigil signer journal verify|list").

With --backup-recipients and --backup-dir or --backup-s3-bucket, the signer
encrypts each active share to the operator's age recipients and stores it as
<prefix>/<wallet id>/<signer>.age, retrying in the background while the target
is down; "sigil recover" rebuilds a key from t such backups.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var cfg signer.Config
			var dataDir, metricsAddr string
			fs.StringVar(&cfg.CoordinatorURL, "coordinator", "https://127.0.0.1:8443", "the coordinator's node port; several replicas' ports separated by commas, tried in order (the next one when one is unreachable)")
			fs.StringVar(&cfg.CertFile, "cert", "", "this signer's certificate (role signer), PEM")
			fs.StringVar(&cfg.KeyFile, "key", "", "private key of --cert, PEM")
			fs.StringVar(&cfg.CAFile, "ca", "", "CA certificate the coordinator's certificate chains to")
			fs.StringVar(&cfg.PeerCAFile, "peer-ca", "", "signer CA that other signers' certificates chain to (default: --ca)")
			fs.StringVar(&cfg.ServerName, "server-name", "", "name to check in the coordinator's certificate (default: the host of each --coordinator)")
			fs.StringVar(&cfg.KEKFile, "kek-file", "", "file with this signer's 32-byte key-encryption key, mode 0600 (default: <data-dir>/kek.bin)")
			fs.StringVar(&dataDir, "data-dir", "./sigil-signer", "folder of the share database (shares.db) and, by default, the KEK")
			fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL share database (postgres://...); empty uses SQLite in --data-dir")
			fs.StringVar(&metricsAddr, "metrics-addr", "", "address serving Prometheus metrics at /metrics; empty disables")
			policyFlags(fs, &cfg.Policy, "this signer")
			addBackupFlags(fs, &cfg.Backup)
			env.addLogFlags(fs)
			return func() error {
				logger, err := env.logger()
				if err != nil {
					return err
				}
				if cfg.CertFile == "" || cfg.KeyFile == "" || cfg.CAFile == "" {
					return fmt.Errorf("%w: --cert, --key and --ca are required", errUsage)
				}
				if err := checkBackupFlags(cfg.Backup); err != nil {
					return err
				}
				if cfg.KEKFile == "" {
					cfg.KEKFile = filepath.Join(dataDir, "kek.bin")
				}
				cfg.SQLitePath = filepath.Join(dataDir, "shares.db")
				cfg.Logger = logger
				reg := observe.NewRegistry()
				cfg.Registerer = reg
				s, err := signer.New(env.ctx, cfg)
				if err != nil {
					return err
				}
				defer s.Close()
				if metricsAddr != "" {
					ln, err := net.Listen("tcp", metricsAddr)
					if err != nil {
						return fmt.Errorf("--metrics-addr: %w", err)
					}
					srv := &http.Server{Handler: observe.MetricsHandler(reg), ReadHeaderTimeout: 10 * time.Second}
					go func() { _ = srv.Serve(ln) }()
					defer srv.Close()
				}
				logger.Info("signer starting", "name", s.Name(), "coordinator", cfg.CoordinatorURL)
				return s.Run(env.ctx)
			}
		},
	}
}

func signerInitCommand() *command {
	return &command{
		name:    "signer init",
		summary: "create a signer's key-encryption key (KEK) file",
		usage: `Writes 32 random bytes to --kek-file with mode 0600, refusing to overwrite
an existing file. The KEK encrypts every key share this signer stores: back it
up somewhere safe, apart from the share database. Losing it loses the shares.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var path string
			fs.StringVar(&path, "kek-file", "./sigil-signer/kek.bin", "where to write the KEK")
			return func() error {
				if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
					return err
				}
				k, err := kek.Create(path)
				if err != nil {
					return err
				}
				k.Destroy()
				fmt.Fprintf(env.stdout, "KEK written to %s (mode 0600); back it up apart from the share database\n", path)
				return nil
			}
		},
	}
}
