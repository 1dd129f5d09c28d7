package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/reqsig"
)

func TestRequestKeyInit(t *testing.T) {
	for _, alg := range []string{reqsig.Ed25519, reqsig.ECDSAP256} {
		t.Run(alg, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys", "app.pem")
			cli := func() (int, string, string) {
				var out, errOut bytes.Buffer
				code := run(context.Background(), []string{"request-key", "init", "--out", path, "--algorithm", alg},
					&cliEnv{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }})
				return code, out.String(), errOut.String()
			}
			code, out, errOut := cli()
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v %v", fi, err)
			}
			k, err := reqsig.LoadPrivateKeyFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(out) != "app "+k.PublicText() {
				t.Fatalf("printed %q, want the trust line of the key", out)
			}
			// The printed line is a valid trusted-keys file.
			trusted := filepath.Join(t.TempDir(), "trusted")
			if err := os.WriteFile(trusted, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			tr, err := reqsig.LoadTrusted(trusted)
			if name, ok := tr.Name(k.Algorithm, k.PublicKey()); err != nil || !ok || name != "app" {
				t.Fatalf("trust line: %q %v %v", name, ok, err)
			}
			if strings.Contains(out+errOut, "PRIVATE KEY") {
				t.Fatal("the private key was printed")
			}
			if code, _, errOut := cli(); code == 0 || !strings.Contains(errOut, "exists") {
				t.Fatalf("overwrote an existing key: exit %d %s", code, errOut)
			}
		})
	}
}
