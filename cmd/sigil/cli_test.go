package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigPrecedence checks flags beat SIGIL_* environment variables,
// which beat the --config file, which beats the defaults.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sigil.yaml")
	if err := os.WriteFile(file, []byte("api-addr: 127.0.0.1:1111\nnode-addr: 127.0.0.1:2222\nmetrics-addr: 127.0.0.1:3333\ncors-origin: [\"http://a.test\", \"http://b.test\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SIGIL_NODE_ADDR": "127.0.0.1:4444", "SIGIL_METRICS_ADDR": "127.0.0.1:5555", "SIGIL_CONFIG": file}
	var api, node, metrics, data string
	var cors listFlag
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&api, "api-addr", "default", "")
	fs.StringVar(&node, "node-addr", "default", "")
	fs.StringVar(&metrics, "metrics-addr", "default", "")
	fs.StringVar(&data, "data-dir", "default", "")
	fs.Var(&cors, "cors-origin", "")
	cli := &cliEnv{getenv: func(k string) string { return env[k] }}
	if err := parse(fs, []string{"--metrics-addr", "127.0.0.1:6666"}, cli); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][2]string{
		"file only":      {api, "127.0.0.1:1111"},
		"env beats file": {node, "127.0.0.1:4444"},
		"flag beats env": {metrics, "127.0.0.1:6666"},
		"default":        {data, "default"},
		"list from file": {cors.String(), "http://a.test,http://b.test"},
	} {
		if got[0] != got[1] {
			t.Errorf("%s: got %q, want %q", name, got[0], got[1])
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("no-such-flag: 1\n"), 0o600)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("api-addr", "", "")
	err := parse(fs, []string{"--config", bad}, &cliEnv{getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), `unknown key "no-such-flag"`) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestRunExitCodesAndHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	env := func() *cliEnv {
		out.Reset()
		errOut.Reset()
		return &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), getenv: func(string) string { return "" }}
	}
	ctx := context.Background()
	if code := run(ctx, []string{"nope"}, env()); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut.String())
	}
	if code := run(ctx, []string{"server", "--help"}, env()); code != 0 || !strings.Contains(out.String(), "--node-client-ca") || !strings.Contains(out.String(), "SIGIL_") {
		t.Fatalf("server --help: %d %q", code, out.String())
	}
	if code := run(ctx, []string{"server", "--bogus"}, env()); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	if code := run(ctx, []string{"server"}, env()); code != 1 || !strings.Contains(errOut.String(), "--node-tls-cert") {
		t.Fatalf("server without certificates: %d %q", code, errOut.String())
	}
	if code := run(ctx, []string{"token", "create", "--scope", "root"}, env()); code != 2 || !strings.Contains(errOut.String(), "unknown scope") {
		t.Fatalf("bad scope: %d %q", code, errOut.String())
	}
}

// TestPKIAndTokenCommands walks the operator's first steps: a CA, a server
// and a signer certificate, and a token printed alone on stdout.
func TestPKIAndTokenCommands(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	env := func() *cliEnv {
		out.Reset()
		errOut.Reset()
		return &cliEnv{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }}
	}
	for _, args := range [][]string{
		{"pki", "init", "--dir", pkiDir},
		{"pki", "issue", "--dir", pkiDir, "--name", "sigil-server", "--role", "server"},
		{"pki", "issue", "--dir", pkiDir, "--name", "signer-1", "--role", "signer"},
	} {
		if code := run(ctx, args, env()); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
	}
	if code := run(ctx, []string{"pki", "init", "--dir", pkiDir}, env()); code != 1 {
		t.Fatalf("second pki init must refuse to overwrite: exit %d", code)
	}
	info, err := os.Stat(filepath.Join(pkiDir, "signer-1-key.pem"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("signer key mode: %v %v", info, err)
	}
	dataDir := filepath.Join(dir, "data")
	if code := run(ctx, []string{"token", "create", "--scope", "wallets:read,signatures:write", "--data-dir", dataDir}, env()); code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut.String())
	}
	token := out.String()
	if !strings.HasPrefix(token, "sgl_") || strings.Count(token, "\n") != 1 || len(strings.TrimSpace(token)) < 40 {
		t.Fatalf("token create printed %q; want the token alone on one line", token)
	}
}

// TestServerStopsGracefully runs `sigil server` as main does and cancels
// its context, as SIGTERM does: it must stop serving and exit 0 promptly.
func TestServerStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	quiet := func() *cliEnv {
		return &cliEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	}
	for _, args := range [][]string{
		{"pki", "init", "--dir", pkiDir},
		{"pki", "issue", "--dir", pkiDir, "--name", "sigil-server", "--role", "server"},
	} {
		if code := run(context.Background(), args, quiet()); code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"server", "--api-addr", apiAddr, "--node-addr", "127.0.0.1:0", "--metrics-addr", "",
			"--data-dir", filepath.Join(dir, "data"), "--node-tls-cert", filepath.Join(pkiDir, "sigil-server.pem"),
			"--node-tls-key", filepath.Join(pkiDir, "sigil-server-key.pem"), "--node-client-ca", filepath.Join(pkiDir, "ca.pem")}, quiet())
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Post("http://"+apiAddr+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
		if err == nil {
			_ = res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after a graceful stop", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop within 10 s of the signal")
	}
	if _, err := http.Get("http://" + apiAddr + "/"); err == nil {
		t.Fatal("the API port still answers after shutdown")
	}
}
