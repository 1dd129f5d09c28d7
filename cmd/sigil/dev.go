package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/reqsig"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// devInfo is what `sigil dev` writes to <data-dir>/dev.json for tools and
// tests: where the API is and an admin token.
type devInfo struct {
	APIURL string `json:"api_url"`
	Token  string `json:"token"`
	// RequestKeyFile is the dev request key, with --require-signed-requests.
	RequestKeyFile string `json:"request_key_file,omitempty"`
}

func devCommand() *command {
	return &command{
		name:    "dev",
		summary: "run everything in one process: coordinator, MPC signers, and an HSM driver on SoftHSM2",
		usage: `Runs a whole Sigil on this machine for development: the coordinator, --signers
MPC signers (each with its own SQLite database and KEK under --data-dir), and,
when a PKCS#11 module is available (SoftHSM2 at its Debian path, or
--pkcs11-module), an HSM driver on a token it initialises in the data folder.
They talk over real mTLS on loopback with a dev PKI made on first start.
Restarting on the same --data-dir keeps every wallet.

When ready it prints the API URL, an admin token and commands to paste, and
writes <data-dir>/dev.json with "api_url" and "token".

With --require-signed-requests, signature requests must be signed end to end:
it makes a dev request key (<data-dir>/request-key.pem, ECDSA P-256), which
the coordinator, the signers and the driver trust, and adds its path to
dev.json as "request_key_file" (sign with "sigil sign --request-key FILE" or
the SDKs' request key option). Without it, unsigned requests are accepted, so
grpcurl works as shown. --validation-gate-url puts a validation gate in front
of every signer and the driver.

The --backup-* flags are those of "sigil signer": every signer backs its
shares up there, so "sigil recover" can be tried on a laptop.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var cfg server.Config
			var cors listFlag
			var n, t int
			var pkcs11Module string
			var policy guard.Settings
			var backupCfg backup.Config
			fs.StringVar(&cfg.APIAddr, "api-addr", server.DefaultAPIAddr, "address of the API port")
			fs.StringVar(&cfg.NodeAddr, "node-addr", server.DefaultNodeAddr, "address of the node port (mTLS, for the signers and the driver)")
			fs.StringVar(&cfg.MetricsAddr, "metrics-addr", server.DefaultMetricsAddr, "address serving Prometheus metrics at /metrics; empty disables")
			fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "folder for every database, the dev PKI, the KEKs and the SoftHSM token")
			fs.Var(&cors, "cors-origin", "browser origin allowed to call the API port (repeat or comma-separate; * allows any)")
			fs.IntVar(&n, "signers", 3, "n: how many MPC signers to run")
			fs.IntVar(&t, "threshold", 2, "t: how many signers must take part in a signature")
			fs.StringVar(&pkcs11Module, "pkcs11-module", "", `PKCS#11 module for the HSM driver (default: SoftHSM2 when installed; "none" disables the HSM backend)`)
			fs.DurationVar(&cfg.KeygenTimeout, "keygen-timeout", 5*time.Minute, "how long an MPC key generation may take")
			fs.DurationVar(&cfg.SignTimeout, "sign-timeout", 60*time.Second, "how long one MPC signing attempt may take")
			fs.BoolVar(&policy.RequireSignedRequests, "require-signed-requests", false, "require signature requests signed with the dev request key (made in --data-dir)")
			fs.DurationVar(&policy.RequestMaxAge, "request-max-age", reqsig.DefaultMaxAge, "how old a signed request may be")
			gateFlags(fs, &policy.Gate)
			addBackupFlags(fs, &backupCfg)
			presignFlags(fs, &cfg)
			env.addLogFlags(fs)
			return func() error {
				logger, err := env.logger()
				if err != nil {
					return err
				}
				if err := checkBackupFlags(backupCfg); err != nil {
					return err
				}
				if n < 2 || t < 2 || t > n {
					return fmt.Errorf("%w: --signers %d --threshold %d: want 2 <= threshold <= signers", errUsage, n, t)
				}
				cfg.CORSOrigins, cfg.Logger = cors, logger
				if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
					return err
				}
				var requestKeyFile string
				if policy.RequireSignedRequests {
					if requestKeyFile, policy.TrustedRequestKeysFile, err = cluster.EnsureDevRequestKey(cfg.DataDir); err != nil {
						return err
					}
					cfg.TrustedRequestKeysFile, cfg.RequireSignedRequests = policy.TrustedRequestKeysFile, true
				}
				cfg.RequestMaxAge = policy.RequestMaxAge
				opts := cluster.Options{Dir: cfg.DataDir, Signers: n, Threshold: t, Server: cfg, Policy: policy, Logger: logger, Backup: backupCfg}
				switch {
				case pkcs11Module == "none":
				case pkcs11Module != "":
					opts.HSM = &cluster.HSMOptions{ModulePath: pkcs11Module, PIN: env.getenv(envHSMPIN), TokenLabel: env.getenv("SIGIL_HSM_TOKEN_LABEL")}
				case cluster.SoftHSMAvailable():
					opts.HSM = &cluster.HSMOptions{ModulePath: cluster.SoftHSMModule}
				default:
					logger.Info("SoftHSM2 not found: running without the HSM backend (apt-get install softhsm2 to add it)")
				}
				c, err := cluster.Start(env.ctx, opts)
				if err != nil {
					return err
				}
				defer c.Close()
				info, err := devToken(env.ctx, c.Server.Store(), c.Server.APIURL(), requestKeyFile, filepath.Join(cfg.DataDir, "dev.json"))
				if err != nil {
					return err
				}
				printDevBanner(env, info, cfg.DataDir, n, t, opts.HSM != nil)
				if backupCfg.Enabled() {
					printBackupHint(env, backupCfg)
				}
				<-env.ctx.Done()
				logger.Info("stopping")
				return nil
			}
		},
	}
}

// devToken reuses the admin token of dev.json when it is still valid, so
// a restart keeps scripts working, and writes dev.json.
func devToken(ctx context.Context, st *store.SQL, apiURL, requestKeyFile, path string) (*devInfo, error) {
	var info devInfo
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &info) == nil && info.Token != "" {
		if _, err := st.TokenByHash(ctx, auth.Hash(info.Token)); err != nil {
			info.Token = ""
		}
	}
	if info.Token == "" {
		tok, err := auth.Mint(ctx, st, []auth.Scope{auth.ScopeAdmin}, "sigil dev")
		if err != nil {
			return nil, err
		}
		info.Token = tok
	}
	info.APIURL, info.RequestKeyFile = apiURL, requestKeyFile
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return &info, errors.Join(os.Rename(tmp, path))
}

func printDevBanner(env *cliEnv, info *devInfo, dataDir string, n, t int, withHSM bool) {
	backends := fmt.Sprintf("MPC (%d-of-%d signers)", t, n)
	if withHSM {
		backends += " and HSM (SoftHSM2 driver)"
	}
	host := info.APIURL[len("http://"):]
	if info.RequestKeyFile != "" {
		fmt.Fprintf(env.stdout, `
Signed requests are required: sign with the dev request key %s
  sigil sign --request-key %s --wallet <wal_...> --message "hello"
`, info.RequestKeyFile, info.RequestKeyFile)
	}
	fmt.Fprintf(env.stdout, `
Sigil is running: %s.

  API URL:      %s
  Admin token:  %s
  (both saved in %s)

Try it:

  export SIGIL_TOKEN=%s
  grpcurl -plaintext %s list
  grpcurl -plaintext -H "authorization: Bearer $SIGIL_TOKEN" -d '{"name": "demo"}' %s sigil.wallet.v1.WalletService/CreateWallet
  sigil wallet create --name demo          # waits for the MPC key generation (tens of seconds)
  sigil wallet create --backend hsm        # an HSM wallet (milliseconds)
  sigil sign --wallet <wal_...> --message "hello"

Stop with Ctrl-C; start again on the same --data-dir to keep the wallets.
`, backends, info.APIURL, info.Token, filepath.Join(dataDir, "dev.json"), info.Token, host, host)
}

func printBackupHint(env *cliEnv, c backup.Config) {
	where := c.Dir
	if where == "" {
		where = "s3://" + c.S3.Bucket + "/" + c.S3.Prefix
	}
	fmt.Fprintf(env.stdout, `Share backups go to %s (<wallet id>/<signer>.age, encrypted to %s).
Rebuild a wallet's key from them offline:

  sigil recover --identity <your age identity file> --backups %s --wallet <wal_...>

`, where, c.RecipientsFile, where)
}
