package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/internal/attest"
)

// envHSMPIN carries the HSM user PIN when no --pin-file is given. There is
// deliberately no --pin flag: command lines show in `ps`.
const envHSMPIN = "SIGIL_HSM_PIN"

// hsmFlags are the flags every command that opens a token shares.
type hsmFlags struct {
	module, token, pinFile, label string
	sessions                      int
}

func (h *hsmFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&h.module, "pkcs11-module", "", "path of the HSM's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so (required)")
	fs.StringVar(&h.token, "token-label", "", "label of the HSM token (required)")
	fs.StringVar(&h.pinFile, "pin-file", "", "file holding the token's user PIN (one line); or set "+envHSMPIN+". There is no --pin flag, so the PIN never shows in ps")
	fs.StringVar(&h.label, "master-key-label", hsm.DefaultMasterKeyLabel, "label of the AES-256 master key on the token")
	fs.IntVar(&h.sessions, "sessions", hsm.DefaultSessions, "PKCS#11 sessions to open: how many operations run in the HSM at once")
}

// config reads the PIN and returns the hsm.Config the flags describe.
func (h *hsmFlags) config(env *cliEnv) (hsm.Config, error) {
	if h.module == "" || h.token == "" {
		return hsm.Config{}, fmt.Errorf("%w: --pkcs11-module and --token-label are required", errUsage)
	}
	pin, err := readPIN(h.pinFile, env)
	if err != nil {
		return hsm.Config{}, err
	}
	return hsm.Config{ModulePath: h.module, TokenLabel: h.token, PIN: pin, MasterKeyLabel: h.label, Sessions: h.sessions}, nil
}

func readPIN(pinFile string, env *cliEnv) (string, error) {
	if pinFile != "" {
		return readPINFile(pinFile)
	}
	if pin := env.getenv(envHSMPIN); pin != "" {
		return pin, nil
	}
	return "", fmt.Errorf("%w: no HSM PIN: give --pin-file or set %s", errUsage, envHSMPIN)
}

// readPINFile reads a PIN file, refusing one that group or others may
// read, as the signer refuses such a KEK file. The mode is checked on the
// open descriptor, so the file checked is the file read.
func readPINFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--pin-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--pin-file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("--pin-file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("--pin-file %s has mode %04o: group and others must not have access to a PIN; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("--pin-file: %w", err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("--pin-file %s is empty", path)
	}
	return pin, nil
}

func hsmDriverCommand() *command {
	return &command{
		name:    "hsm-driver",
		summary: "run an HSM driver: take HSM jobs from the coordinator and run them on a PKCS#11 token",
		usage: `Runs an HSM driver. It dials the coordinator's node port over mTLS with a
driver certificate ("sigil pki issue --role driver"), long-polls for jobs and runs
them on the token: key generation (the key is wrapped by the token's master key
and stored in the driver database) and signing. Run any number of drivers, each
with its own HSM holding the same master key ("sigil hsm import-master-key") and
all with the same --database-url: work spreads across them, and a dead driver's
jobs go to the others once their leases lapse.

Before it unwraps a key to sign, the driver checks the request: with
--trusted-request-keys only requests signed end to end by one of those keys
(not expired, mismatched or replayed), and with --validation-gate-url only what
the operator's gate approves. Every decision goes into the hash-chained journal
in the driver database, durably first ("sigil hsm-driver journal verify|list").

The PIN comes from --pin-file or the SIGIL_HSM_PIN environment variable.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var hf hsmFlags
			var cfg driver.Config
			hf.add(fs)
			fs.StringVar(&cfg.NodeURL, "node-url", "https://127.0.0.1:8443", "the coordinator's node port; several replicas' ports separated by commas, tried in order (the next one when one is unreachable)")
			fs.StringVar(&cfg.TLSCert, "tls-cert", "", "this driver's certificate (role driver), PEM")
			fs.StringVar(&cfg.TLSKey, "tls-key", "", "private key of --tls-cert, PEM")
			fs.StringVar(&cfg.NodeCA, "node-ca", "", "CA certificate the coordinator's certificate chains to (ca.pem of \"sigil pki init\")")
			fs.StringVar(&cfg.ServerName, "server-name", "", "name to check in the coordinator's certificate (default: the host of each --node-url)")
			fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL driver database shared by all drivers (postgres://...); empty uses SQLite in --data-dir, for a single driver")
			fs.StringVar(&cfg.DataDir, "data-dir", "./sigil-hsm-driver", "folder of the SQLite driver database (hsm-driver.db) when --database-url is empty")
			fs.IntVar(&cfg.Concurrency, "concurrency", 0, "jobs run at once (default: --sessions)")
			fs.DurationVar(&cfg.ClaimWait, "claim-wait", driver.DefaultClaimWait, "how long each poll waits for a job on the coordinator (at most 60s)")
			fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9465", "address serving Prometheus metrics at /metrics; empty disables")
			policyFlags(fs, &cfg.Policy, "this driver")
			env.addLogFlags(fs)
			return func() error {
				logger, err := env.logger()
				if err != nil {
					return err
				}
				if cfg.ClaimWait > 60*time.Second {
					return fmt.Errorf("%w: --claim-wait %v: at most 60s", errUsage, cfg.ClaimWait)
				}
				if cfg.HSM, err = hf.config(env); err != nil {
					return err
				}
				cfg.Logger = logger
				p, err := driver.Open(env.ctx, cfg)
				if err != nil {
					return err
				}
				defer p.Close()
				if addr := p.MetricsAddr(); addr != "" {
					logger.Info("serving metrics", "addr", addr)
				}
				return p.Run(env.ctx)
			}
		},
	}
}

func hsmInitMasterKeyCommand() *command {
	return &command{
		name:    "hsm init-master-key",
		summary: "generate the AES-256 master key inside an HSM token",
		usage: `Generates the master key inside the token, where it never leaves (sensitive,
non-extractable, wrap/unwrap only), and prints its fingerprint. Refuses if the
token already holds one: every wrapped wallet key depends on it.

Only this HSM will hold the key. To give several HSMs the same key (several
drivers, a backup), use "sigil hsm generate-master-key" and
"sigil hsm import-master-key" instead.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var hf hsmFlags
			hf.add(fs)
			return func() error {
				cfg, err := hf.config(env)
				if err != nil {
					return err
				}
				h, err := hsm.OpenToken(env.ctx, cfg)
				if err != nil {
					return err
				}
				defer h.Close()
				if err := h.InitMasterKey(env.ctx); err != nil {
					return err
				}
				return printFingerprint(env, h, "generated")
			}
		},
	}
}

func hsmImportMasterKeyCommand() *command {
	return &command{
		name:    "hsm import-master-key",
		summary: "import master key material (from stdin) into an HSM token",
		usage: `Reads 32 bytes of master key material from stdin, as 64 hex digits or as 32
raw bytes, creates the master key from it on the token (sensitive,
non-extractable, wrap/unwrap only) and prints its fingerprint, which is the same
on every HSM holding the same key. Refuses if the token already holds a master
key. Example:

  sigil hsm import-master-key --pkcs11-module ... --token-label hsm2 < material`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var hf hsmFlags
			hf.add(fs)
			return func() error {
				cfg, err := hf.config(env)
				if err != nil {
					return err
				}
				material, err := readMaterial(env.stdin)
				if err != nil {
					return err
				}
				defer clear(material)
				h, err := hsm.OpenToken(env.ctx, cfg)
				if err != nil {
					return err
				}
				defer h.Close()
				if err := h.ImportMasterKey(env.ctx, material); err != nil {
					return err
				}
				return printFingerprint(env, h, "imported")
			}
		},
	}
}

// readMaterial accepts 64 hex digits (surrounding whitespace ignored) or
// exactly 32 raw bytes.
func readMaterial(r io.Reader) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: give the master key material on stdin", errUsage)
	}
	raw, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	defer clear(raw)
	if len(raw) == hsm.MasterKeySize {
		return bytes.Clone(raw), nil
	}
	text := bytes.TrimSpace(raw)
	if len(text) == 2*hsm.MasterKeySize {
		out := make([]byte, hsm.MasterKeySize)
		if _, err := hex.Decode(out, text); err == nil {
			return out, nil
		}
		clear(out)
	}
	return nil, errors.New("stdin must hold the master key material: 64 hex digits, or 32 raw bytes")
}

func hsmGenerateMasterKeyCommand() *command {
	return &command{
		name:    "hsm generate-master-key",
		summary: "print fresh master key material (hex) for import into several HSMs",
		usage: `Prints 32 random bytes as 64 hex digits on stdout, for
"sigil hsm import-master-key" on each HSM of a deployment.

Whoever holds this material can unwrap every wallet key: run it on an offline
machine, never store it unencrypted, and prefer splitting it among custodians.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			return func() error {
				material, err := hsm.GenerateMasterKeyMaterial()
				if err != nil {
					return err
				}
				defer clear(material)
				fmt.Fprintln(env.stdout, hex.EncodeToString(material))
				fmt.Fprintln(env.stderr, "sigil: this is the master key of every wallet it will protect; keep it offline")
				return nil
			}
		},
	}
}

func printFingerprint(env *cliEnv, h *hsm.HSM, verb string) error {
	fp, err := h.MasterKeyFingerprint(env.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "master key %s; fingerprint %s\n", verb, fp)
	return nil
}

func hsmInitAttestationKeyCommand() *command {
	return &command{
		name:    "hsm init-attestation-key",
		summary: "generate the HSM's attestation key (ECDSA P-256) and print its public key",
		usage: `Generates the token's attestation key: an ECDSA P-256 pair made on the token,
whose private key is sensitive, never extractable and may only sign. The driver
has it sign, for every new wallet key, a statement binding the wallet id to the
public key, so that the coordinator accepts only keys an HSM made; a stolen
driver certificate alone can no longer plant keys.

Each HSM has its own attestation key (it never leaves the token). Prints the
public key as PEM on stdout: pin it on the coordinator with
--hsm-attestation-key (one file may hold the keys of every HSM). Refuses if the
token already has one; "sigil hsm attestation-key" prints it again.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var hf hsmFlags
			hf.add(fs)
			return func() error {
				return withToken(env, &hf, func(h *hsm.HSM) error {
					if err := h.InitAttestationKey(env.ctx); err != nil {
						return err
					}
					return printAttestationKey(env, h)
				})
			}
		},
	}
}

func hsmAttestationKeyCommand() *command {
	return &command{
		name:    "hsm attestation-key",
		summary: "print the HSM's attestation public key (PEM) for the coordinator's --hsm-attestation-key",
		usage: `Prints the public key of the token's attestation key as PEM on stdout, for
"sigil server --hsm-attestation-key FILE". Example, pinning two HSMs:

  sigil hsm attestation-key --pkcs11-module ... --token-label hsm1 --pin-file pin1 >  attestation-keys.pem
  sigil hsm attestation-key --pkcs11-module ... --token-label hsm2 --pin-file pin2 >> attestation-keys.pem`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var hf hsmFlags
			hf.add(fs)
			return func() error {
				return withToken(env, &hf, func(h *hsm.HSM) error { return printAttestationKey(env, h) })
			}
		},
	}
}

// withToken opens the token the flags name (no master key needed) for fn.
func withToken(env *cliEnv, hf *hsmFlags, fn func(h *hsm.HSM) error) error {
	cfg, err := hf.config(env)
	if err != nil {
		return err
	}
	h, err := hsm.OpenToken(env.ctx, cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

func printAttestationKey(env *cliEnv, h *hsm.HSM) error {
	pub, err := h.AttestationKey(env.ctx)
	if err != nil {
		return err
	}
	pemKey, err := attest.EncodePEM(pub)
	if err != nil {
		return err
	}
	_, err = env.stdout.Write(pemKey)
	fmt.Fprintf(env.stderr, "sigil: attestation key id %x\n", attest.KeyID(pub)[:8])
	return err
}
