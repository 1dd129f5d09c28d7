package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/sigiltest"
	"github.com/sigil-wallet/sigil/server/auth"
)

// clientCommands are the commands of wallet.go and sign.go.
func clientCommands() []*command {
	return []*command{walletCreateCommand(), walletGetCommand(), walletListCommand(), signCommand()}
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// sigilCLI runs one command line in-process and returns what it printed and
// its exit code. Through run when commands() lists the command, else the
// same way run does it.
func sigilCLI(t *testing.T, getenv func(string) string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := &cliEnv{stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(""), getenv: getenv}
	var code int
	if c, _ := findCommand(commands(), args); c != nil {
		code = run(t.Context(), args, env)
	} else {
		code = runClientCommand(t, args, env)
	}
	return cliResult{stdout.String(), stderr.String(), code}
}

// runClientCommand mirrors run for commands not yet listed in commands().
func runClientCommand(t *testing.T, args []string, env *cliEnv) int {
	t.Helper()
	env.ctx = t.Context()
	c, rest := findCommand(clientCommands(), args)
	if c == nil {
		t.Fatalf("no command for %q", args)
	}
	fs := flag.NewFlagSet("sigil "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fn := c.flags(fs, env)
	if err := parse(fs, rest, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(env.stdout, c, fs)
			return 0
		}
		fmt.Fprintf(env.stderr, "sigil %s: %v\n", c.name, err)
		return 2
	}
	if err := fn(); err != nil {
		fmt.Fprintf(env.stderr, "sigil %s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// envOf serves SIGIL_* variables from a map.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func (r cliResult) ok(t *testing.T) cliResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

var walletIDPattern = regexp.MustCompile(`wal_[0-9a-z]{26}`)

func TestWalletCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator and an HSM driver")
	}
	t.Cleanup(func() { _ = hsmtest.RemoveAll() })
	env := sigiltest.Start(t, sigiltest.Options{})
	vars := envOf(map[string]string{"SIGIL_API_URL": env.APIURL, "SIGIL_TOKEN": env.Token})

	// Human output: the wallet's block, progress on stderr.
	r := sigilCLI(t, vars, "wallet", "create", "--backend", "hsm", "--name", "cli treasury", "--external-id", "cli-1").ok(t)
	for key, prefix := range map[string]string{"Status": "ACTIVE", "Backend": "HSM", "Name": "cli treasury", "Public key": "0",
		"Ethereum": "0x", "Bitcoin": "bc1q", "External ID": "cli-1"} {
		if v := field(t, r.stdout, key); !strings.HasPrefix(v, prefix) {
			t.Errorf("wallet create: %s is %q, want %s...", key, v, prefix)
		}
	}
	if !strings.Contains(r.stderr, "generating the HSM key of wal_") {
		t.Errorf("no progress on stderr: %q", r.stderr)
	}
	first := walletIDPattern.FindString(r.stdout)

	// --json is protobuf JSON.
	r = sigilCLI(t, vars, "wallet", "create", "--json").ok(t)
	var w walletv1.Wallet
	if err := protojson.Unmarshal([]byte(r.stdout), &w); err != nil || w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE || len(w.GetPublicKey()) != 33 {
		t.Fatalf("wallet create --json: %v, %v\n%s", &w, err, r.stdout)
	}
	r = sigilCLI(t, vars, "wallet", "create", "--no-wait", "--json", "--name", "later").ok(t)
	var pending walletv1.Wallet
	if err := protojson.Unmarshal([]byte(r.stdout), &pending); err != nil || pending.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_CREATING || r.stderr != "" {
		t.Fatalf("wallet create --no-wait: %v, %v, stderr %q", &pending, err, r.stderr)
	}

	r = sigilCLI(t, vars, "wallet", "get", "--id", w.GetId(), "--json").ok(t)
	var got walletv1.Wallet
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || got.GetId() != w.GetId() || !bytes.Equal(got.GetPublicKey(), w.GetPublicKey()) {
		t.Fatalf("wallet get --json: %v, %v", &got, err)
	}
	r = sigilCLI(t, vars, "wallet", "get", "--id", first).ok(t)
	if !strings.Contains(r.stdout, first) || !strings.Contains(r.stdout, "cli-1") {
		t.Fatalf("wallet get:\n%s", r.stdout)
	}

	// The HSM driver finishes the --no-wait wallet within moments.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(sigilCLI(t, vars, "wallet", "get", "--id", pending.GetId()).ok(t).stdout, "ACTIVE") {
		if time.Now().After(deadline) {
			t.Fatal("the --no-wait wallet never became ACTIVE")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r = sigilCLI(t, vars, "wallet", "list").ok(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], first) || !strings.Contains(lines[3], "later") {
		t.Fatalf("wallet list:\n%s", r.stdout)
	}
	r = sigilCLI(t, vars, "wallet", "list", "--status", "active", "--json").ok(t)
	var list walletv1.ListWalletsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.GetWallets()) != 3 || list.GetWallets()[0].GetId() != first {
		t.Fatalf("wallet list --json: %v, %v", &list, err)
	}
	r = sigilCLI(t, vars, "wallet", "list", "--status", "failed").ok(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "no wallets") {
		t.Fatalf("empty list: %+v", r)
	}

	t.Run("dev.json gives the URL and the token", func(t *testing.T) {
		dir := t.TempDir()
		b, _ := json.Marshal(map[string]string{"api_url": env.APIURL, "token": env.Token})
		if err := os.WriteFile(filepath.Join(dir, "dev.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		r := sigilCLI(t, noEnv, "wallet", "get", "--data-dir", dir, "--id", first).ok(t)
		if !strings.Contains(r.stdout, first) {
			t.Fatalf("wallet get:\n%s", r.stdout)
		}
		// SIGIL_DATA_DIR works as well, and a token from the environment
		// wins over dev.json (this one lacks wallets:write).
		r = sigilCLI(t, envOf(map[string]string{"SIGIL_DATA_DIR": dir}), "wallet", "list").ok(t)
		if !strings.Contains(r.stdout, first) {
			t.Fatalf("wallet list:\n%s", r.stdout)
		}
		readOnly := env.MintToken(t, auth.ScopeWalletsRead)
		r = sigilCLI(t, envOf(map[string]string{"SIGIL_DATA_DIR": dir, "SIGIL_TOKEN": readOnly, "SIGIL_API_URL": env.APIURL}), "wallet", "create")
		if r.code != 1 || !strings.Contains(r.stderr, "permission_denied") {
			t.Fatalf("read-only token: %+v", r)
		}
	})

	for _, tc := range []struct {
		name   string
		getenv func(string) string
		args   []string
		code   int
		stderr string
	}{
		{"unknown flag", vars, []string{"wallet", "create", "--bogus"}, 2, "flag provided but not defined"},
		{"bad backend", vars, []string{"wallet", "create", "--backend", "tpm"}, 2, "want mpc or hsm"},
		{"get without id", vars, []string{"wallet", "get"}, 2, "--id is required"},
		{"positional argument", vars, []string{"wallet", "get", "wal_x"}, 2, "unexpected argument"},
		{"bad status", vars, []string{"wallet", "list", "--status", "gone"}, 2, "want creating, active or failed"},
		{"bad URL", envOf(map[string]string{"SIGIL_TOKEN": "t"}), []string{"wallet", "list", "--api-url", "127.0.0.1:1"}, 2, "http:// or https://"},
		{"no token anywhere", noEnv, []string{"wallet", "list", "--data-dir", t.TempDir()}, 2, "no API token"},
		{"unknown wallet", vars, []string{"wallet", "get", "--id", "wal_" + strings.Repeat("0", 26)}, 1, "(code not_found)"},
		{"malformed id", vars, []string{"wallet", "get", "--id", "nope"}, 1, "(code invalid_argument)"},
		{"wrong token", envOf(map[string]string{"SIGIL_API_URL": env.APIURL, "SIGIL_TOKEN": "nope"}), []string{"wallet", "list"}, 1, "(code unauthenticated); check --token"},
		{"server down", envOf(map[string]string{"SIGIL_TOKEN": "t"}), []string{"wallet", "list", "--api-url", "http://127.0.0.1:1"}, 1, "cannot reach the Sigil API at http://127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sigilCLI(t, tc.getenv, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
}

func TestWaitProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &waitProgress{w: &buf, what: "generating the MPC key of wal_x"}
	for _, s := range []time.Duration{0, time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second, 11 * time.Second} {
		p.update("creating", s)
	}
	p.finish("active", 11500*time.Millisecond)
	want := "generating the MPC key of wal_x: creating, 0s\n" +
		"generating the MPC key of wal_x: creating, 5s\n" +
		"generating the MPC key of wal_x: creating, 11s\n" +
		"generating the MPC key of wal_x: active after 11.5s\n"
	if buf.String() != want {
		t.Fatalf("progress:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	tty := &waitProgress{w: &buf, tty: true, what: "k"}
	tty.update("creating", 1200*time.Millisecond)
	tty.update("creating", 2*time.Second)
	tty.finish("active", 2*time.Second)
	if want := "\rk: creating, 1s \rk: creating, 2s \rk: active after 2.0s\033[K\n"; buf.String() != want {
		t.Fatalf("tty progress %q, want %q", buf.String(), want)
	}
	// Nothing shown, nothing to finish.
	buf.Reset()
	(&waitProgress{w: &buf}).finish("active", time.Second)
	if buf.Len() != 0 {
		t.Fatalf("finish printed %q", buf.String())
	}
}
