package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/wire"
)

// TestTokenListRevoke: tokens made with `sigil token create` are listed by
// id and revoked with `sigil token revoke`, after which a running
// coordinator refuses them with UNAUTHENTICATED and TOKEN_REVOKED.
func TestTokenListRevoke(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	var out, errOut bytes.Buffer
	sigil := func(args ...string) int {
		out.Reset()
		errOut.Reset()
		return run(context.Background(), append(args, "--data-dir", dataDir), &cliEnv{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }})
	}
	if code := sigil("token", "create", "--scope", "wallets:read", "--description", "ci reader"); code != 0 {
		t.Fatalf("token create: %d %s", code, errOut.String())
	}
	token := strings.TrimSpace(out.String())
	id := regexp.MustCompile(`tok_[0-9a-z]{26}`).FindString(errOut.String())
	if id == "" {
		t.Fatalf("token create did not say the id on stderr: %q", errOut.String())
	}
	if code := sigil("token", "create", "--scope", "admin"); code != 0 {
		t.Fatal(errOut.String())
	}
	if code := sigil("token", "list"); code != 0 {
		t.Fatal(errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], id) ||
		!strings.Contains(lines[1], "wallets:read") || !strings.Contains(lines[1], "ci reader") || strings.Contains(out.String(), token) {
		t.Fatalf("token list:\n%s", out.String())
	}

	env := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) { c.DataDir = dataDir }})
	c := walletv1connect.NewWalletServiceClient(servertest.H2CClient(), env.APIURL)
	list := func() error {
		req := connect.NewRequest(&walletv1.ListWalletsRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		_, err := c.ListWallets(context.Background(), req)
		return err
	}
	if err := list(); err != nil {
		t.Fatalf("token before revocation: %v", err)
	}
	if code := sigil("token", "revoke", "--id", id); code != 0 || !strings.Contains(out.String(), "revoked "+id) {
		t.Fatalf("token revoke: %d %s %s", code, out.String(), errOut.String())
	}
	err := list()
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked token: %v, want unauthenticated", err)
	}
	if r, ok := wire.ReasonOf(err); !ok || r != walletv1.ErrorReason_ERROR_REASON_TOKEN_REVOKED {
		t.Fatalf("revoked token reason: %v %v", r, ok)
	}
	if code := sigil("token", "list"); code != 0 || !regexp.MustCompile(id+`\s+wallets:read\s+-\s+\S+\s+\d{4}-`).MatchString(out.String()) {
		t.Fatalf("list after revoke:\n%s", out.String())
	}
	if code := sigil("token", "revoke", "--id", "tok_aaaaaaaaaaaaaaaaaaaaaaaaaa"); code != 1 || !strings.Contains(errOut.String(), "not found") {
		t.Fatalf("unknown id: %d %s", code, errOut.String())
	}
	if code := sigil("token", "revoke", "--id", "nope"); code != 2 {
		t.Fatalf("malformed id: exit %d", code)
	}
}
