package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

// startDev runs `sigil dev` with args until the test ends and returns its
// dev.json.
func startDev(t *testing.T, args ...string) apiDevFile {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"dev", "--data-dir", dir, "--api-addr", "127.0.0.1:0", "--node-addr", "127.0.0.1:0",
			"--metrics-addr", "", "--pkcs11-module", "none", "--log-level", "error"}, args...),
			&cliEnv{stdout: &out, stderr: &out, getenv: func(string) string { return "" }})
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(time.Minute)
	for {
		var dev apiDevFile
		if b, err := os.ReadFile(filepath.Join(dir, "dev.json")); err == nil && json.Unmarshal(b, &dev) == nil && dev.Token != "" {
			return dev
		}
		select {
		case code := <-done:
			t.Fatalf("sigil dev exited %d: %s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dev.json after a minute: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevSignedRequests: plain `sigil dev` accepts unsigned requests (the
// README's grpcurl session), and `--require-signed-requests` makes a dev
// request key, names it in dev.json and refuses unsigned requests.
func TestDevSignedRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole sigil dev; skipped with -short")
	}
	ctx := context.Background()
	unknownWallet := "wal_00000000000000000000000000"
	t.Run("default: unsigned accepted", func(t *testing.T) {
		dev := startDev(t)
		if dev.RequestKeyFile != "" {
			t.Fatalf("request_key_file %q without the flag", dev.RequestKeyFile)
		}
		c, err := sigil.New(dev.APIURL, sigil.WithToken(dev.Token))
		if err != nil {
			t.Fatal(err)
		}
		// Past the signature check, the unknown wallet is what is refused.
		_, err = c.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: unknownWallet, Message: "hi"})
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("unsigned request: %v, want not_found for the unknown wallet", err)
		}
	})
	t.Run("--require-signed-requests", func(t *testing.T) {
		dev := startDev(t, "--require-signed-requests")
		fi, err := os.Stat(dev.RequestKeyFile)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("request_key_file %q: %v %v", dev.RequestKeyFile, fi, err)
		}
		key, err := sigil.LoadRequestKey(dev.RequestKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		unsigned, _ := sigil.New(dev.APIURL, sigil.WithToken(dev.Token))
		_, err = unsigned.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: unknownWallet, Message: "hi"})
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("unsigned request: %v, want permission_denied", err)
		}
		signed, _ := sigil.New(dev.APIURL, sigil.WithToken(dev.Token), sigil.WithRequestKey(key))
		_, err = signed.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: unknownWallet, Message: "hi"})
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("signed request: %v, want not_found for the unknown wallet", err)
		}
	})
}
