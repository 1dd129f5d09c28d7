package server_test

import (
	"bytes"
	"context"
	"testing"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/auth"
)

// TestKeySchemesRefusedBeforeWork: a scheme the HSM backend cannot hold is
// Unimplemented naming the scheme, the backend and the module's limit, in
// every wire protocol, and no wallet (nor job) is recorded; malformed
// child requests are InvalidArgument naming the field.
func TestKeySchemesRefusedBeforeWork(t *testing.T) {
	env := startMPC(t)
	admin := env.Token(t, auth.ScopeAdmin)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := context.Background()
			c := walletClient(env, admin, p.opts...)
			for scheme, limit := range map[walletv1.KeyScheme]string{
				walletv1.KeyScheme_KEY_SCHEME_ED25519:           "cannot wrap Ed25519",
				walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1: "no BIP-340 Schnorr mechanism",
			} {
				_, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM, KeyScheme: scheme}))
				wantCode(t, err, connect.CodeUnimplemented, scheme.String()+" on backend BACKEND_HSM")
				wantCode(t, err, connect.CodeUnimplemented, limit)
			}
			list, err := c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range list.Msg.GetWallets() {
				if w.GetKeyScheme() != walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1 {
					t.Fatalf("a refused wallet was recorded: %v", w)
				}
			}

			hsm, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				req  *walletv1.CreateWalletRequest
				code connect.Code
				part string
			}{
				{&walletv1.CreateWalletRequest{DerivationPath: "m/0"}, connect.CodeInvalidArgument, "derivation_path: needs parent_wallet_id"},
				{&walletv1.CreateWalletRequest{ParentWalletId: hsm.Msg.GetWallet().GetId()}, connect.CodeInvalidArgument, "derivation_path"},
				{&walletv1.CreateWalletRequest{ParentWalletId: hsm.Msg.GetWallet().GetId(), DerivationPath: "m/0'"}, connect.CodeInvalidArgument, "derivation_path: invalid derivation path"},
				{&walletv1.CreateWalletRequest{ParentWalletId: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", DerivationPath: "m/0"}, connect.CodeNotFound, "parent_wallet_id"},
				{&walletv1.CreateWalletRequest{ParentWalletId: hsm.Msg.GetWallet().GetId(), DerivationPath: "m/0"}, connect.CodeUnimplemented, "BACKEND_HSM"},
				{&walletv1.CreateWalletRequest{ParentWalletId: hsm.Msg.GetWallet().GetId(), DerivationPath: "m/0",
					KeyScheme: walletv1.KeyScheme_KEY_SCHEME_ED25519}, connect.CodeInvalidArgument, "key_scheme"},
			} {
				_, err := c.CreateWallet(ctx, connect.NewRequest(tc.req))
				wantCode(t, err, tc.code, tc.part)
			}

			// raw_message is for Ed25519 wallets only: refused on the
			// payload before the wallet's state (still creating here) counts.
			_, err = c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: hsm.Msg.GetWallet().GetId(),
				Payload: &walletv1.CreateSignatureRequest_RawMessage{RawMessage: bytes.Repeat([]byte{1}, 10)}}))
			wantCode(t, err, connect.CodeInvalidArgument, "raw_message")
		})
	}
}
