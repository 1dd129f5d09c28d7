package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serverPKI makes a node CA and a server certificate for `sigil server`.
func serverPKI(t *testing.T, dir string) []string {
	t.Helper()
	pkiDir := filepath.Join(dir, "pki")
	for _, args := range [][]string{
		{"pki", "init", "--dir", pkiDir},
		{"pki", "issue", "--dir", pkiDir, "--name", "sigil-server", "--role", "server"},
	} {
		var errOut bytes.Buffer
		if code := run(context.Background(), args, &cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" }}); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
	}
	return []string{"--node-addr", "127.0.0.1:0", "--metrics-addr", "", "--data-dir", filepath.Join(dir, "data"),
		"--node-tls-cert", filepath.Join(pkiDir, "sigil-server.pem"), "--node-tls-key", filepath.Join(pkiDir, "sigil-server-key.pem"),
		"--node-client-ca", filepath.Join(pkiDir, "ca.pem")}
}

// TestServerStartupErrors: an error after the store is open (a port in
// use, an unreadable TLS certificate) exits 1 with the real error; it used
// to panic with a nil pointer dereference and lose it.
func TestServerStartupErrors(t *testing.T) {
	dir := t.TempDir()
	base := serverPKI(t, dir)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	garbage := filepath.Join(dir, "api.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"API port in use", []string{"--api-addr", busy.Addr().String()},
			[]string{"listen on the api port " + busy.Addr().String(), "address already in use"}},
		{"unreadable API certificate", []string{"--api-addr", "127.0.0.1:0", "--api-tls-cert", garbage, "--api-tls-key", garbage},
			[]string{"api port TLS", "--api-tls-cert"}},
		{"missing API certificate", []string{"--api-addr", "127.0.0.1:0", "--api-tls-cert", filepath.Join(dir, "none.pem"), "--api-tls-key", garbage},
			[]string{"--api-tls-cert", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			env := &cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" }}
			code := run(context.Background(), append(append([]string{"server"}, base...), tc.args...), env)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut.String(), w) {
					t.Fatalf("stderr does not say %q:\n%s", w, errOut.String())
				}
			}
			if strings.Contains(errOut.String(), "panic") {
				t.Fatalf("panicked:\n%s", errOut.String())
			}
		})
	}
	// The database opened before the failure was closed again: a second
	// start on the same data folder works up to the same error.
	var errOut bytes.Buffer
	if code := run(context.Background(), append(append([]string{"server"}, base...), "--api-addr", busy.Addr().String()),
		&cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" }}); code != 1 ||
		!strings.Contains(errOut.String(), "address already in use") {
		t.Fatalf("second start: %d %s", code, errOut.String())
	}
}

// TestSecretWarnings: a password in --database-url on the command line is
// warned about (ps shows it), not in SIGIL_DATABASE_URL; an API port bound
// beyond loopback without TLS is warned about.
func TestSecretWarnings(t *testing.T) {
	dir := t.TempDir()
	base := serverPKI(t, dir)
	const warning = "--database-url on the command line holds a password"
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tokenArgs := []string{"token", "list", "--data-dir", filepath.Join(dir, "data")}
	for _, tc := range []struct {
		name   string
		args   []string
		envURL string
		warn   bool
	}{
		{"password on the command line", []string{"--database-url", "postgres://sigil:s3cret@127.0.0.1:1/none?connect_timeout=1"}, "", true},
		{"no password", []string{"--database-url", "postgres://sigil@127.0.0.1:1/none?connect_timeout=1"}, "", false},
		{"password in the environment", nil, "postgres://sigil:s3cret@127.0.0.1:1/none?connect_timeout=1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			env := &cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(k string) string {
				if k == "SIGIL_DATABASE_URL" {
					return tc.envURL
				}
				return ""
			}}
			_ = run(context.Background(), append(append([]string(nil), tokenArgs...), tc.args...), env)
			if got := strings.Contains(errOut.String(), warning); got != tc.warn {
				t.Fatalf("warned %v, want %v:\n%s", got, tc.warn, errOut.String())
			}
			if strings.Contains(errOut.String(), "s3cret") {
				t.Fatalf("the password was echoed:\n%s", errOut.String())
			}
		})
	}
	// Plaintext API beyond loopback: the warning is logged before the
	// (here deliberately failing) node port is bound.
	var errOut bytes.Buffer
	args := append(append([]string{"server"}, base...), "--api-addr", "0.0.0.0:0", "--node-addr", busy.Addr().String())
	_ = run(context.Background(), args, &cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" }})
	if !strings.Contains(errOut.String(), "plaintext HTTP beyond loopback") {
		t.Fatalf("no plaintext warning for 0.0.0.0:\n%s", errOut.String())
	}
	errOut.Reset()
	args = append(append([]string{"server"}, base...), "--api-addr", "127.0.0.1:0", "--node-addr", busy.Addr().String())
	_ = run(context.Background(), args, &cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" }})
	if strings.Contains(errOut.String(), "plaintext HTTP beyond loopback") {
		t.Fatalf("plaintext warning for loopback:\n%s", errOut.String())
	}
}

// TestPINFileMode: a PIN file readable by group or others is refused, as a
// KEK file is.
func TestPINFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pin")
	if err := os.WriteFile(path, []byte("1234\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	env := &cliEnv{getenv: func(string) string { return "" }}
	if _, err := readPIN(path, env); err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 PIN file: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	pin, err := readPIN(path, env)
	if err != nil || pin != "1234" {
		t.Fatalf("0600 PIN file: %q %v", pin, err)
	}
	// Through the command line too.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"hsm", "init-master-key", "--pkcs11-module", "/nonexistent.so", "--token-label", "x", "--pin-file", path},
		&cliEnv{stdout: &bytes.Buffer{}, stderr: &errOut, getenv: func(string) string { return "" }})
	if code == 0 || !strings.Contains(errOut.String(), "mode 0640") {
		t.Fatalf("hsm init-master-key with a 0640 PIN file: exit %d: %s", code, errOut.String())
	}
}
