package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/sigil-wallet/sigil/internal/pki"
)

func pkiInitCommand() *command {
	return &command{
		name:    "pki init",
		summary: "create a CA for the node port (signers, drivers, the server)",
		usage: `Creates a certificate authority in --dir: ca.pem (share it) and ca-key.pem
(mode 0600; keep it offline). Refuses to overwrite an existing CA.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var dir, cn string
			var validity time.Duration
			fs.StringVar(&dir, "dir", "./sigil-pki", "folder for ca.pem and ca-key.pem")
			fs.StringVar(&cn, "name", "Sigil node CA", "the CA's common name")
			fs.DurationVar(&validity, "validity", 10*365*24*time.Hour, "how long the CA is valid")
			return func() error {
				if err := pki.InitCA(dir, cn, validity); err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "CA written to %s/ca.pem (key %s/ca-key.pem, mode 0600)\n", dir, dir)
				return nil
			}
		},
	}
}

func pkiIssueCommand() *command {
	return &command{
		name:    "pki issue",
		summary: "issue a certificate for a signer, a driver or the server",
		usage: `Issues a certificate signed by the CA in --dir, writing <name>.pem and
<name>-key.pem (mode 0600) to --out. The name is the node's identity: signer
names are the ones given to "sigil server --mpc-signers". Server certificates
carry --host names (default localhost, 127.0.0.1, ::1).`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var dir, out, name, role string
			var hosts listFlag
			var validity time.Duration
			fs.StringVar(&dir, "dir", "./sigil-pki", "folder of the CA (from \"sigil pki init\")")
			fs.StringVar(&out, "out", "", "folder for the certificate and key (default: --dir)")
			fs.StringVar(&name, "name", "", "the node's name: lowercase letters, digits, '-', '_' and '.' (required)")
			fs.StringVar(&role, "role", "", "signer, driver or server (required)")
			fs.Var(&hosts, "host", "DNS name or IP the server certificate is valid for (repeat; server role only)")
			fs.DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificate is valid")
			return func() error {
				if name == "" || role == "" {
					return fmt.Errorf("%w: --name and --role are required", errUsage)
				}
				if out == "" {
					out = dir
				}
				certPath, keyPath, err := pki.Issue(dir, out, name, role, hosts, validity)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "%s certificate for %q written to %s (key %s, mode 0600)\n", role, name, certPath, keyPath)
				return nil
			}
		},
	}
}
