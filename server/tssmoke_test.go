package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/auth"
)

// TestTypeScriptSmoke runs sdk/ts/smoke/list-wallets.ts, which uses the
// generated TypeScript code and @connectrpc/connect-node, against a live
// server. It needs Node and the root npm packages (`npm ci`, done by
// `make test`); without them it skips, except under CI=true.
func TestTypeScriptSmoke(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tsx := filepath.Join(root, "node_modules", ".bin", "tsx")
	if _, err := os.Stat(tsx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing: run `npm ci` at the repository root (make test does)", tsx)
		}
		t.Skipf("%s missing: run `npm ci` at the repository root", tsx)
	}
	env := startMPC(t)
	token := env.Token(t, auth.ScopeWalletsRead, auth.ScopeWalletsWrite)
	c := walletClient(env, token)
	for range 3 {
		if _, err := c.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{})); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(tsx, filepath.Join(root, "sdk", "ts", "smoke", "list-wallets.ts"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SIGIL_API_URL="+env.APIURL, "SIGIL_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smoke test failed: %v\n%s", err, out)
	}
	var got struct {
		Wallets         int  `json:"wallets"`
		Unauthenticated bool `json:"unauthenticated"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("smoke output %q: %v", out, err)
	}
	if got.Wallets != 3 || !got.Unauthenticated {
		t.Fatalf("smoke saw %+v, want 3 wallets and an Unauthenticated refusal without a token", got)
	}
}
