package server_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/reqsig"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

// TestSignedRequestsAtTheAPI checks the coordinator's early check of
// request signatures, in every wire protocol: with signed requests
// required and a trusted-keys list, an unsigned request, a bad signature
// and an untrusted key are PermissionDenied, an expired one
// InvalidArgument, and a good one is recorded with its request id and key
// name (and the signed bytes the signers will verify).
func TestSignedRequestsAtTheAPI(t *testing.T) {
	dir := t.TempDir()
	app, _ := reqsig.GenerateKey(reqsig.ECDSAP256)
	pemBytes, _ := app.MarshalPEM()
	keyFile := filepath.Join(dir, "app.pem")
	trusted := filepath.Join(dir, "trusted")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trusted, []byte("app "+app.PublicText()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.HSM, c.TrustedRequestKeysFile, c.RequireSignedRequests = true, trusted, true
	}})
	ctx := context.Background()
	admin := walletClient(env, env.Token(t, auth.ScopeAdmin))
	r, err := admin.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
	if err != nil {
		t.Fatal(err)
	}
	walletID := r.Msg.GetWallet().GetId()
	if err := env.Server.Store().ActivateWallet(ctx, walletID, storetest.PubKey); err != nil {
		t.Fatal(err)
	}
	key, err := sigil.LoadRequestKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := reqsig.GenerateKey(reqsig.Ed25519)
	roguePEM, _ := rogue.MarshalPEM()
	rogueKey, _ := sigil.ParseRequestKey(roguePEM)
	signed := func(k *sigil.RequestKey, at time.Time, msg string) *walletv1.CreateSignatureRequest {
		req := &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Message{Message: msg}}
		if k != nil {
			if err := k.Sign(req, "", at); err != nil {
				t.Fatal(err)
			}
		}
		return req
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := walletClient(env, env.Token(t, auth.ScopeSignaturesWrite, auth.ScopeWalletsRead), p.opts...)
			good := signed(key, time.Now(), "pay 1 "+p.name)
			res, err := c.CreateSignature(ctx, connect.NewRequest(good))
			if err != nil {
				t.Fatal(err)
			}
			sg := res.Msg.GetSignature()
			if sg.GetRequesterKey() != "app" || sg.GetRequestId() != good.GetRequestSignature().GetRequestId() {
				t.Fatalf("signature shows key %q request %q", sg.GetRequesterKey(), sg.GetRequestId())
			}
			stored, err := env.Server.Store().GetSignature(ctx, sg.GetId())
			if err != nil {
				t.Fatal(err)
			}
			v, err := reqsig.Policy{Require: true}.Verify(stored.SignedRequest, reqsig.Expected{WalletID: walletID, Kind: reqsig.KindEIP191,
				Digest: sg.GetDigest()}, time.Now())
			if err != nil || v.Request.RequestID != sg.GetRequestId() {
				t.Fatalf("the stored signed request does not verify: %v", err)
			}

			_, err = c.CreateSignature(ctx, connect.NewRequest(signed(nil, time.Now(), "unsigned")))
			wantCode(t, err, connect.CodePermissionDenied, "requires signed requests")
			_, err = c.CreateSignature(ctx, connect.NewRequest(signed(rogueKey, time.Now(), "rogue")))
			wantCode(t, err, connect.CodePermissionDenied, "does not trust")
			flipped := signed(key, time.Now(), "flipped")
			flipped.RequestSignature.Signature[10] ^= 1
			_, err = c.CreateSignature(ctx, connect.NewRequest(flipped))
			wantCode(t, err, connect.CodePermissionDenied, "does not verify")
			_, err = c.CreateSignature(ctx, connect.NewRequest(signed(key, time.Now().Add(-time.Hour), "old")))
			wantCode(t, err, connect.CodeInvalidArgument, "expired")
			noTime := signed(key, time.Now(), "no time")
			noTime.RequestSignature.CreateTime = nil
			_, err = c.CreateSignature(ctx, connect.NewRequest(noTime))
			wantCode(t, err, connect.CodeInvalidArgument, "create_time")
			badID := signed(key, time.Now(), "bad id")
			badID.RequestSignature.RequestId = "no spaces allowed"
			badID.RequestSignature.CreateTime = timestamppb.Now()
			_, err = c.CreateSignature(ctx, connect.NewRequest(badID))
			wantCode(t, err, connect.CodeInvalidArgument, "request_id")
		})
	}
}
