package server_test

import (
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/api"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// TestMPCWalletRateLimit: past its burst, a token's MPC wallets are refused
// with ResourceExhausted saying when to retry (message, RetryInfo detail,
// Retry-After), in every protocol; an idempotent replay costs nothing;
// another token and HSM wallets are not affected.
func TestMPCWalletRateLimit(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.MPCSigners = []string{"signer-1", "signer-2", "signer-3"}
		c.MPCThreshold = 2
		c.HSM = true
		c.MPCWalletRate = api.Rate{N: 2, Per: time.Hour}
	}})
	ctx := t.Context()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := walletClient(env, env.Token(t, auth.ScopeWalletsWrite, auth.ScopeWalletsRead), p.opts...) // a replay returns the wallet: it needs wallets:read
			create := func(ext string, backend walletv1.Backend) error {
				if ext != "" {
					ext = p.name + "-" + ext
				}
				_, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "w", ExternalId: ext, Backend: backend}))
				return err
			}
			if err := create("a", walletv1.Backend_BACKEND_MPC); err != nil {
				t.Fatal(err)
			}
			if err := create("a", walletv1.Backend_BACKEND_MPC); err != nil { // a replay: free
				t.Fatal(err)
			}
			if err := create("b", walletv1.Backend_BACKEND_MPC); err != nil {
				t.Fatal(err)
			}
			err := create("c", walletv1.Backend_BACKEND_MPC)
			wantCode(t, err, connect.CodeResourceExhausted, "retry in 1800s")
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatal(err)
			}
			var retry *errdetails.RetryInfo
			for _, d := range ce.Details() {
				if v, err := d.Value(); err == nil {
					if r, ok := v.(*errdetails.RetryInfo); ok {
						retry = r
					}
				}
			}
			if retry == nil || retry.GetRetryDelay().AsDuration() != 30*time.Minute {
				t.Fatalf("RetryInfo = %v, want 30m", retry)
			}
			if p.name == "connect" && ce.Meta().Get("Retry-After") != "1800" {
				t.Fatalf("Retry-After = %q", ce.Meta().Get("Retry-After"))
			}
			if err := create("", walletv1.Backend_BACKEND_HSM); err != nil {
				t.Fatalf("an HSM wallet was limited: %v", err)
			}
		})
	}
}
