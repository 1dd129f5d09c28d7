package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sigil-wallet/sigil/internal/gate"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/reqsig"
)

// requestFlags declares the signed-request flags shared by the coordinator,
// the signers and the HSM drivers.
func requestFlags(fs *flag.FlagSet, trustedFile *string, require *bool, maxAge *time.Duration, who string) {
	fs.StringVar(trustedFile, "trusted-request-keys", "", "file of the request keys "+who+" trusts, one \"NAME ALGORITHM:BASE64\" per line (as `sigil request-key init` prints); with it, requests must be signed by one of them")
	fs.BoolVar(require, "require-signed-requests", false, "refuse unsigned signature requests")
	fs.DurationVar(maxAge, "request-max-age", reqsig.DefaultMaxAge, "how old a signed request may be")
}

// policyFlags declares a signer's or driver's signing-policy flags.
func policyFlags(fs *flag.FlagSet, p *guard.Settings, who string) {
	requestFlags(fs, &p.TrustedRequestKeysFile, &p.RequireSignedRequests, &p.RequestMaxAge, who)
	gateFlags(fs, &p.Gate)
}

// gateFlags declares the validation gate flags of signers and drivers.
func gateFlags(fs *flag.FlagSet, cfg *gate.Config) {
	fs.StringVar(&cfg.URL, "validation-gate-url", "", "operator's validation gate: asked (HMAC-signed JSON POST) before every signature; only HTTP 200 {\"approved\": true} approves, anything else signs nothing")
	fs.StringVar(&cfg.SecretFile, "validation-gate-secret-file", "", "HMAC-SHA256 key for the gate's Sigil-Signature header, mode 0600 (at least 16 bytes)")
	fs.DurationVar(&cfg.Timeout, "validation-gate-timeout", gate.DefaultTimeout, "how long a gate call may take before it fails (closed)")
}

func requestKeyInitCommand() *command {
	return &command{
		name:    "request-key init",
		summary: "create an application's request key, which signs its signature requests end to end",
		usage: `Writes a new request key (PKCS #8 PEM, mode 0600, never overwriting a file)
to --out and prints the line that trusts it: add that line to the
--trusted-request-keys file of every signer, HSM driver and (optionally) the
coordinator. Give the key file to the application (Go SDK RequestKey option,
TypeScript SDK requestKey option, or "sigil sign --request-key FILE").`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var out, alg, name string
			fs.StringVar(&out, "out", "", "where to write the private key (required)")
			fs.StringVar(&alg, "algorithm", reqsig.Ed25519, "ed25519 or ecdsa-p256-sha256")
			fs.StringVar(&name, "name", "", "the key's name in the printed trust line (default: the file name without extension)")
			return func() error {
				if out == "" {
					return fmt.Errorf("%w: --out is required", errUsage)
				}
				if name == "" {
					name = trimExt(filepath.Base(out))
				}
				line, err := writeRequestKey(out, alg, name)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.stderr, "request key written to %s (mode 0600); trust it with this line in --trusted-request-keys:\n", out)
				fmt.Fprintln(env.stdout, line)
				return nil
			}
		},
	}
}

// writeRequestKey makes a key, writes it to path and returns its trust line.
func writeRequestKey(path, alg, name string) (string, error) {
	k, err := reqsig.GenerateKey(alg)
	if err != nil {
		return "", fmt.Errorf("--algorithm: %w", err)
	}
	if _, err := reqsig.NewTrusted(reqsig.TrustedKey{Name: name, Algorithm: k.Algorithm, PublicKey: k.PublicKey()}); err != nil {
		return "", fmt.Errorf("--name: %w", err)
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("--out: %w", err)
	}
	_, err = f.Write(pemBytes)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return name + " " + k.PublicText(), nil
}

func trimExt(s string) string {
	if e := filepath.Ext(s); e != "" && e != s {
		return s[:len(s)-len(e)]
	}
	return s
}
