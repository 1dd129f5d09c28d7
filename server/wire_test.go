package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/wire"
	"google.golang.org/protobuf/types/known/durationpb"
)

// postJSON calls a procedure with the Connect protocol and a JSON body, as
// curl or a hand-written client would, and returns the status and the
// decoded Connect error (code, message).
func postJSON(t *testing.T, url, token, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var e struct{ Code, Message string }
	_ = json.Unmarshal(raw, &e)
	return res.StatusCode, e.Code, e.Message
}

// TestStrictJSON: unknown enum names and unknown fields are refused with
// InvalidArgument naming the field, where Connect's default codec would
// drop them and create a wallet on the default backend.
func TestStrictJSON(t *testing.T) {
	env := startMPC(t)
	token := env.Token(t, auth.ScopeAdmin)
	create := env.APIURL + walletv1connect.WalletServiceCreateWalletProcedure
	for _, tc := range []struct{ name, body, want string }{
		{"lowercase enum name", `{"backend": "hsm"}`, `enum field backend: "hsm" (want one of BACKEND_UNSPECIFIED, BACKEND_MPC, BACKEND_HSM)`},
		{"unknown enum name", `{"backend": "BACKEND_FOO"}`, `"BACKEND_FOO"`},
		{"unknown field", `{"name": "x", "colour": "red"}`, `unknown field "colour"`},
		{"unknown key scheme", `{"keyScheme": "ED25519"}`, `keyScheme`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := postJSON(t, create, token, tc.body)
			if status != http.StatusBadRequest || code != "invalid_argument" || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %d %s %q, want 400 invalid_argument mentioning %q", status, code, msg, tc.want)
			}
		})
	}
	// Nothing was created by the refused requests.
	l, err := walletClient(env, token).ListWallets(context.Background(), connect.NewRequest(&walletv1.ListWalletsRequest{}))
	if err != nil || len(l.Msg.GetWallets()) != 0 {
		t.Fatalf("wallets after refused requests: %v %v", l, err)
	}
	// The proper name works.
	if status, code, msg := postJSON(t, create, token, `{"backend": "BACKEND_HSM", "name": "ok"}`); status != http.StatusOK {
		t.Fatalf("BACKEND_HSM: %d %s %s", status, code, msg)
	}

	// The node port decodes JSON the same way.
	req, _ := http.NewRequest(http.MethodPost, env.NodeURL+driverv1connect.DriverServiceClaimJobProcedure, strings.NewReader(`{"wait": "1s", "colour": 1}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := env.NodeClient(t, "driver-x").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `unknown field \"colour\"`) {
		t.Fatalf("node port, unknown field: %d %s", res.StatusCode, body)
	}

	sign := env.APIURL + walletv1connect.WalletServiceCreateSignatureProcedure
	hexHash := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, hash string }{
		{"hex that decodes as base64", hexHash},
		{"0x hex", "0x" + hexHash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := postJSON(t, sign, token, `{"walletId": "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", "hash": "`+tc.hash+`"}`)
			if status != http.StatusBadRequest || code != "invalid_argument" || !strings.Contains(msg, "hash") ||
				!strings.Contains(msg, "JSON bytes fields are base64") {
				t.Fatalf("got %d %s %q, want invalid_argument naming hash and saying bytes are base64", status, code, msg)
			}
		})
	}
}

// TestErrorReasons: errors carry a machine-readable reason in their
// details, in every protocol.
func TestErrorReasons(t *testing.T) {
	env := startMPC(t)
	ctx := context.Background()
	admin := env.Token(t, auth.ScopeAdmin)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := walletClient(env, admin, p.opts...)
			w, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa"}))
			wantReason(t, err, connect.CodeNotFound, walletv1.ErrorReason_ERROR_REASON_NOT_FOUND)
			_, err = c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: w.Msg.GetWallet().GetId(), Payload: &walletv1.CreateSignatureRequest_Message{Message: "hi"}}))
			wantReason(t, err, connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE)
			_, err = c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: "r-" + p.name}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: "r-" + p.name, Name: "other"}))
			wantReason(t, err, connect.CodeAlreadyExists, walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT)
			_, err = c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: "nope"}))
			wantReason(t, err, connect.CodeInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT)
			_, err = c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageToken: "forged"}))
			wantReason(t, err, connect.CodeInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT)
			_, err = walletClient(env, "", p.opts...).ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
			wantReason(t, err, connect.CodeUnauthenticated, walletv1.ErrorReason_ERROR_REASON_UNAUTHENTICATED)
			_, err = walletClient(env, env.Token(t, auth.ScopeWalletsRead), p.opts...).CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{}))
			wantReason(t, err, connect.CodePermissionDenied, walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED)
		})
	}
	noBackend := servertest.Start(t, servertest.Options{})
	_, err := walletClient(noBackend, noBackend.Token(t, auth.ScopeAdmin)).CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{}))
	wantReason(t, err, connect.CodeFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_BACKEND_UNAVAILABLE)
}

func wantReason(t *testing.T, err error, code connect.Code, reason walletv1.ErrorReason) {
	t.Helper()
	wantCode(t, err, code, "")
	got, ok := wire.ReasonOf(err)
	if !ok || got != reason {
		t.Fatalf("%v: reason = %v (present %v), want %v", err, got, ok, reason)
	}
}

// TestNULRefused: a NUL byte in a text field is refused at validation, on
// SQLite and on PostgreSQL (which cannot store it), on both ports.
func TestNULRefused(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			env := servertest.Start(t, servertest.Options{Dialect: dialect, Configure: func(c *server.Config) { c.HSM = true }})
			ctx := context.Background()
			c := walletClient(env, env.Token(t, auth.ScopeAdmin))
			_, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "a\x00b"}))
			wantReason(t, err, connect.CodeInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT)
			wantCode(t, err, connect.CodeInvalidArgument, "name: must not contain NUL bytes")
			w, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "ok"}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: w.Msg.GetWallet().GetId(), Payload: &walletv1.CreateSignatureRequest_Message{Message: "x\x00y"}}))
			wantCode(t, err, connect.CodeInvalidArgument, "message: must not contain NUL bytes")

			// Node port: a driver's job error.
			dc := driverv1connect.NewDriverServiceClient(env.NodeClient(t, "driver-x"), env.NodeURL)
			claimed, err := dc.ClaimJob(ctx, connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(10 * time.Second)}))
			if err != nil || claimed.Msg.GetJob() == nil {
				t.Fatalf("claim: %v %v", claimed, err)
			}
			job := claimed.Msg.GetJob()
			_, err = dc.FailJob(ctx, connect.NewRequest(&driverv1.FailJobRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId(), Error: "hsm\x00broke", Retryable: true}))
			wantCode(t, err, connect.CodeInvalidArgument, "error: must not contain NUL bytes")
			if _, err := dc.FailJob(ctx, connect.NewRequest(&driverv1.FailJobRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId(), Error: "hsm broke", Retryable: true})); err != nil {
				t.Fatalf("a clean error is accepted: %v", err)
			}

			// Node port: a signer's failure reason and culprits.
			cc := ceremonyv1connect.NewCeremonyServiceClient(env.NodeClient(t, "signer-x"), env.NodeURL)
			_, err = cc.FailCeremony(ctx, connect.NewRequest(&ceremonyv1.FailCeremonyRequest{CeremonyId: "cer_aaaaaaaaaaaaaaaaaaaaaaaaaa", Reason: "bad\x00"}))
			wantCode(t, err, connect.CodeInvalidArgument, "reason: must not contain NUL bytes")
			_, err = cc.FailCeremony(ctx, connect.NewRequest(&ceremonyv1.FailCeremonyRequest{CeremonyId: "cer_aaaaaaaaaaaaaaaaaaaaaaaaaa", Reason: "bad", Culprits: []string{"signer\x00"}}))
			wantCode(t, err, connect.CodeInvalidArgument, "culprits")
		})
	}
}
