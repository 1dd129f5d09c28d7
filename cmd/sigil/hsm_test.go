package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/attest"
)

// runCommand runs one command as run does, without needing it listed in
// commands().
func runCommand(t *testing.T, c *command, args []string, stdin io.Reader, getenv func(string) string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cliEnv{ctx: context.Background(), stdout: &stdout, stderr: &stderr, stdin: stdin, getenv: getenv}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fn := c.flags(fs, env)
	if err := parse(fs, args, env); err != nil {
		return "", err
	}
	err := fn()
	return stdout.String(), err
}

func noEnv(string) string { return "" }

func TestHSMMasterKeyCommands(t *testing.T) {
	t.Cleanup(func() { _ = hsmtest.RemoveAll() })
	// Every token before any handle opens: SoftHSM lists tokens at start.
	module, _, pinA := hsmtest.NewToken(t, "cli-a")
	_, _, pinB := hsmtest.NewToken(t, "cli-b")
	_, _, pinC := hsmtest.NewToken(t, "cli-c")
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(pinA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envPIN := func(pin string) func(string) string {
		return func(k string) string {
			if k == envHSMPIN {
				return pin
			}
			return ""
		}
	}

	material, err := runCommand(t, hsmGenerateMasterKeyCommand(), nil, nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	material = strings.TrimSpace(material)
	if b, err := hex.DecodeString(material); err != nil || len(b) != 32 {
		t.Fatalf("generate-master-key printed %q", material)
	}

	// The same material on two tokens gives the same fingerprint: once as
	// hex (PIN from a file), once as raw bytes (PIN from the environment).
	outA, err := runCommand(t, hsmImportMasterKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-a", "--pin-file", pinFile},
		strings.NewReader(material+"\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(material)
	outB, err := runCommand(t, hsmImportMasterKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-b"},
		bytes.NewReader(raw), envPIN(pinB))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outA, "fingerprint") || outA != outB {
		t.Fatalf("fingerprints differ: %q vs %q", outA, outB)
	}
	// Never over an existing key, neither by import nor by init.
	if _, err := runCommand(t, hsmImportMasterKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-b"},
		strings.NewReader(material), envPIN(pinB)); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("import over an existing key: %v", err)
	}
	if _, err := runCommand(t, hsmInitMasterKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-a", "--pin-file", pinFile},
		nil, noEnv); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("init over an existing key: %v", err)
	}
	// init-master-key makes a different key.
	outC, err := runCommand(t, hsmInitMasterKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-c"}, nil, envPIN(pinC))
	if err != nil || outC == outA {
		t.Fatalf("init-master-key: %q, %v", outC, err)
	}
	// Bad material and a missing PIN are refused with a reason.
	if _, err := runCommand(t, hsmImportMasterKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-c"},
		strings.NewReader("abcd"), envPIN(pinC)); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("short material: %v", err)
	}
	if _, err := runCommand(t, hsmDriverCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-a"}, nil, noEnv); err == nil ||
		!strings.Contains(err.Error(), envHSMPIN) {
		t.Fatalf("driver without a PIN: %v", err)
	}

	// The attestation key: made once, printed as PEM by both commands,
	// different on each HSM.
	tokenA := []string{"--pkcs11-module", module, "--token-label", "cli-a", "--pin-file", pinFile}
	if _, err := runCommand(t, hsmAttestationKeyCommand(), tokenA, nil, noEnv); err == nil || !strings.Contains(err.Error(), "init-attestation-key") {
		t.Fatalf("attestation-key before init: %v", err)
	}
	made, err := runCommand(t, hsmInitAttestationKeyCommand(), tokenA, nil, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	printed, err := runCommand(t, hsmAttestationKeyCommand(), tokenA, nil, noEnv)
	if err != nil || printed != made {
		t.Fatalf("attestation-key printed %q (%v), init printed %q", printed, err, made)
	}
	if keys, err := attest.ParsePEM([]byte(printed)); err != nil || len(keys) != 1 {
		t.Fatalf("printed attestation key does not parse: %v", err)
	}
	if _, err := runCommand(t, hsmInitAttestationKeyCommand(), tokenA, nil, noEnv); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("init-attestation-key twice: %v", err)
	}
	other, err := runCommand(t, hsmInitAttestationKeyCommand(), []string{"--pkcs11-module", module, "--token-label", "cli-b"}, nil, envPIN(pinB))
	if err != nil || other == made {
		t.Fatalf("second HSM's attestation key: %q, %v", other, err)
	}
}
