package server_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

// TestReplayScopedToCaller: a token that may create wallets but not read
// them cannot read a wallet by repeating its creation, and a token cannot
// learn which external ids another token used: external ids belong to the
// token (or its tenant) that made them.
func TestReplayScopedToCaller(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			env := servertest.Start(t, servertest.Options{Dialect: dialect, Configure: func(c *server.Config) { c.HSM = true }})
			ctx := context.Background()
			mint := func(tenant string, scopes ...auth.Scope) walletv1connect.WalletServiceClient {
				tok, _, err := auth.MintWithID(ctx, env.Server.Store(), auth.MintOptions{Scopes: scopes, Tenant: tenant})
				if err != nil {
					t.Fatal(err)
				}
				return walletClient(env, tok)
			}
			admin := mint("", auth.ScopeAdmin)
			writer := mint("", auth.ScopeWalletsWrite)
			createW := func(c walletv1connect.WalletServiceClient, ext, name string) (*walletv1.Wallet, error) {
				r, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: ext, Name: name}))
				if err != nil {
					return nil, err
				}
				return r.Msg.GetWallet(), nil
			}

			// The admin's wallet, made active: its key and addresses are what
			// a weaker token must not read.
			secret, err := createW(admin, "treasury", "t")
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Server.Store().ActivateWallet(ctx, secret.GetId(), storetest.PubKey); err != nil {
				t.Fatal(err)
			}
			// The same external id and body from the writer is a new wallet
			// of its own, in status CREATING, not the admin's.
			mine, err := createW(writer, "treasury", "t")
			if err != nil || mine.GetId() == secret.GetId() || mine.GetPublicKey() != nil {
				t.Fatalf("writer's request with the admin's external id: %v %v", mine, err)
			}
			// A different body from another token is no conflict either: it
			// reveals nothing about the external ids others used.
			if w, err := createW(mint("", auth.ScopeWalletsWrite), "treasury", "other"); err != nil || w.GetId() == secret.GetId() {
				t.Fatalf("other writer, other body: %v %v", w, err)
			}
			// The writer repeating its own request may not read it back.
			_, err = createW(writer, "treasury", "t")
			wantReason(t, err, connect.CodePermissionDenied, walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED)
			wantCode(t, err, connect.CodePermissionDenied, "wallets:read")
			// Within one token a different body is still a conflict.
			_, err = createW(writer, "treasury", "changed")
			wantReason(t, err, connect.CodeAlreadyExists, walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT)
			// The admin's replay returns its wallet, active, with its key.
			again, err := createW(admin, "treasury", "t")
			if err != nil || again.GetId() != secret.GetId() || again.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE || again.GetExternalId() != "treasury" {
				t.Fatalf("admin replay: %v %v", again, err)
			}

			// Tokens of one tenant share external ids.
			first := mint("acme", auth.ScopeWalletsRead, auth.ScopeWalletsWrite)
			rotated := mint("acme", auth.ScopeWalletsRead, auth.ScopeWalletsWrite)
			a, err := createW(first, "acme-1", "")
			if err != nil {
				t.Fatal(err)
			}
			b, err := createW(rotated, "acme-1", "")
			if err != nil || b.GetId() != a.GetId() {
				t.Fatalf("tenant replay: %v %v, want %s", b, err, a.GetId())
			}

			// Signatures: a signatures:write token repeating its request
			// does not get the signature (and its result) back.
			signer := mint("", auth.ScopeSignaturesWrite)
			sign := func(c walletv1connect.WalletServiceClient, ext string) (*walletv1.Signature, error) {
				r, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
					WalletId: secret.GetId(), ExternalId: ext, Payload: &walletv1.CreateSignatureRequest_Message{Message: "pay"}}))
				if err != nil {
					return nil, err
				}
				return r.Msg.GetSignature(), nil
			}
			adminSig, err := sign(admin, "pay-1")
			if err != nil {
				t.Fatal(err)
			}
			s1, err := sign(signer, "pay-1")
			if err != nil || s1.GetId() == adminSig.GetId() {
				t.Fatalf("signer with the admin's external id: %v %v", s1, err)
			}
			_, err = sign(signer, "pay-1")
			wantReason(t, err, connect.CodePermissionDenied, walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED)
			if again, err := sign(admin, "pay-1"); err != nil || again.GetId() != adminSig.GetId() {
				t.Fatalf("admin signature replay: %v %v", again, err)
			}
		})
	}
}
