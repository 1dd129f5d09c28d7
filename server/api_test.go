package server_test

import (
	"bytes"
	"context"

	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

// protocols are the wire protocols every API test runs in.
var protocols = []struct {
	name string
	opts []connect.ClientOption
}{
	{"connect", nil},
	{"grpc", []connect.ClientOption{connect.WithGRPC()}},
	{"grpcweb", []connect.ClientOption{connect.WithGRPCWeb()}},
}

func startMPC(t *testing.T) *servertest.Env {
	return servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.MPCSigners = []string{"signer-1", "signer-2", "signer-3"}
		c.MPCThreshold = 2
		c.HSM = true
	}})
}

func walletClient(env *servertest.Env, token string, opts ...connect.ClientOption) walletv1connect.WalletServiceClient {
	if token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(token)))
	}
	return walletv1connect.NewWalletServiceClient(servertest.H2CClient(), env.APIURL, opts...)
}

// bearer adds the Authorization header to every call.
func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

func wantCode(t *testing.T, err error, code connect.Code, msgPart string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("code = %v (%v), want %v", got, err, code)
	}
	if msgPart != "" && !strings.Contains(err.Error(), msgPart) {
		t.Fatalf("error %q does not mention %q", err, msgPart)
	}
}

func TestWalletAPI(t *testing.T) {
	env := startMPC(t)
	admin := env.Token(t, auth.ScopeAdmin)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := context.Background()
			c := walletClient(env, admin, p.opts...)

			res, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "treasury"}))
			if err != nil {
				t.Fatal(err)
			}
			w := res.Msg.GetWallet()
			if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_CREATING || w.GetBackend() != walletv1.Backend_BACKEND_MPC ||
				w.GetMpcGroup().GetThreshold() != 2 || len(w.GetMpcGroup().GetSigners()) != 3 || len(w.GetPublicKey()) != 0 {
				t.Fatalf("new wallet = %v", w)
			}
			got, err := c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: w.GetId()}))
			if err != nil || got.Msg.GetWallet().GetName() != "treasury" {
				t.Fatalf("GetWallet: %v %v", got, err)
			}

			hsmRes, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
			if err != nil || hsmRes.Msg.GetWallet().GetBackend() != walletv1.Backend_BACKEND_HSM {
				t.Fatalf("HSM wallet: %v %v", hsmRes, err)
			}

			// Idempotency: same external id and body → same wallet; other body → AlreadyExists.
			ext := "order-" + p.name
			a, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: ext, Name: "a"}))
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: ext, Name: "a"}))
			if err != nil || b.Msg.GetWallet().GetId() != a.Msg.GetWallet().GetId() {
				t.Fatalf("repeat: %v %v", b, err)
			}
			_, err = c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: ext, Name: "b"}))
			wantCode(t, err, connect.CodeAlreadyExists, "external_id")

			// A wallet still creating cannot sign.
			_, err = c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: make([]byte, 32)},
			}))
			wantCode(t, err, connect.CodeFailedPrecondition, "not active")
		})
	}
}

func TestListWalletsPaginates(t *testing.T) {
	env := startMPC(t)
	c := walletClient(env, env.Token(t, auth.ScopeWalletsRead, auth.ScopeWalletsWrite))
	ctx := context.Background()
	var want []string
	for range 5 {
		r, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, r.Msg.GetWallet().GetId())
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r, err := c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageSize: 2, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range r.Msg.GetWallets() {
			got = append(got, w.GetId())
		}
		token = r.Msg.GetNextPageToken()
		if token == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("paged ids %v, want %v", got, want)
	}
	_, err := c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageToken: "bm90LWEtdG9rZW4"}))
	wantCode(t, err, connect.CodeInvalidArgument, "page_token")
	// A token from one filter is refused for another.
	r, _ := c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageSize: 1}))
	_, err = c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageSize: 1, PageToken: r.Msg.GetNextPageToken(), Status: walletv1.WalletStatus_WALLET_STATUS_ACTIVE}))
	wantCode(t, err, connect.CodeInvalidArgument, "page_token")
}

func TestSignatureRequests(t *testing.T) {
	env := startMPC(t)
	admin := walletClient(env, env.Token(t, auth.ScopeAdmin))
	ctx := context.Background()
	r, err := admin.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
	if err != nil {
		t.Fatal(err)
	}
	walletID := r.Msg.GetWallet().GetId()
	// Stand in for the backend: this test is about the API layer only.
	if err := env.Server.Store().ActivateWallet(ctx, walletID, storetest.PubKey); err != nil {
		t.Fatal(err)
	}
	got, err := admin.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: walletID}))
	if err != nil || !strings.HasPrefix(got.Msg.GetWallet().GetAddresses().GetEthereum(), "0x") ||
		!strings.HasPrefix(got.Msg.GetWallet().GetAddresses().GetBitcoinP2Wpkh(), "bc1q") {
		t.Fatalf("active wallet: %v %v", got, err)
	}

	s1, err := admin.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, ExternalId: "pay-1", Payload: &walletv1.CreateSignatureRequest_Message{Message: "hello world"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	sig := s1.Msg.GetSignature()
	eip191 := []byte{0xd9, 0xeb, 0xa1, 0x6e, 0xd0, 0xec, 0xae, 0x43}
	if sig.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING || sig.GetKind() != walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE ||
		!bytes.HasPrefix(sig.GetDigest(), eip191) {
		t.Fatalf("signature = %v", sig)
	}
	again, err := admin.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, ExternalId: "pay-1", Payload: &walletv1.CreateSignatureRequest_Message{Message: "hello world"},
	}))
	if err != nil || again.Msg.GetSignature().GetId() != sig.GetId() {
		t.Fatalf("idempotent repeat: %v %v", again, err)
	}
	_, err = admin.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, ExternalId: "pay-1", Payload: &walletv1.CreateSignatureRequest_Message{Message: "hello there"},
	}))
	wantCode(t, err, connect.CodeAlreadyExists, "")

	list, err := admin.ListSignatures(ctx, connect.NewRequest(&walletv1.ListSignaturesRequest{WalletId: walletID}))
	if err != nil || len(list.Msg.GetSignatures()) != 1 {
		t.Fatalf("ListSignatures: %v %v", list, err)
	}
	gs, err := admin.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: sig.GetId()}))
	if err != nil || gs.Msg.GetSignature().GetMessage() != "hello world" {
		t.Fatalf("GetSignature: %v %v", gs, err)
	}

	_, err = admin.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", Payload: &walletv1.CreateSignatureRequest_Hash{Hash: make([]byte, 32)},
	}))
	wantCode(t, err, connect.CodeNotFound, "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	_, err = admin.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: "sig_aaaaaaaaaaaaaaaaaaaaaaaaaa"}))
	wantCode(t, err, connect.CodeNotFound, "")
}

func TestBadInput(t *testing.T) {
	env := startMPC(t)
	c := walletClient(env, env.Token(t, auth.ScopeAdmin))
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
		code connect.Code
		msg  string
	}{
		{"hash of 31 bytes", func() error {
			_, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", Payload: &walletv1.CreateSignatureRequest_Hash{Hash: make([]byte, 31)}}))
			return err
		}, connect.CodeInvalidArgument, "hash"},
		{"no payload", func() error {
			_, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa"}))
			return err
		}, connect.CodeInvalidArgument, "payload"},
		{"bad wallet id", func() error {
			_, err := c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: "nope"}))
			return err
		}, connect.CodeInvalidArgument, "id"},
		{"external id with spaces", func() error {
			_, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: "a b"}))
			return err
		}, connect.CodeInvalidArgument, "external_id"},
		{"page size too big", func() error {
			_, err := c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageSize: 5000}))
			return err
		}, connect.CodeInvalidArgument, "page_size"},
		{"undefined backend", func() error {
			_, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: 42}))
			return err
		}, connect.CodeInvalidArgument, "backend"},
		{"message too long", func() error {
			_, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", Payload: &walletv1.CreateSignatureRequest_Message{Message: strings.Repeat("x", 70000)}}))
			return err
		}, connect.CodeInvalidArgument, "message"},
		{"oversized request", func() error {
			_, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: strings.Repeat("x", 2<<20)}))
			return err
		}, connect.CodeResourceExhausted, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code, tc.msg) })
	}
}

func TestMalformedBodies(t *testing.T) {
	env := startMPC(t)
	token := env.Token(t, auth.ScopeAdmin)
	for _, tc := range []struct{ name, contentType, body string }{
		{"json", "application/json", `{"name": 12, `},
		{"json wrong type", "application/json", `{"backend": {"a": 1}}`},
		{"proto", "application/proto", "\xff\xff\xff\xff\xff\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, env.APIURL+walletv1connect.WalletServiceCreateWalletProcedure, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_argument") {
				t.Fatalf("status %d body %s, want 400 invalid_argument", res.StatusCode, body)
			}
		})
	}
	// Over the limit by Content-Length: refused without reading the body.
	req, _ := http.NewRequest(http.MethodPost, env.APIURL+walletv1connect.WalletServiceCreateWalletProcedure, io.LimitReader(zeroReader{}, 4<<20))
	req.ContentLength = 4 << 20
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "resource_exhausted") || !strings.Contains(string(body), "1 MiB") {
		t.Fatalf("oversized: status %d body %s", res.StatusCode, body)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestAuth(t *testing.T) {
	env := startMPC(t)
	ctx := context.Background()
	readOnly := env.Token(t, auth.ScopeWalletsRead)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			_, err := walletClient(env, "", p.opts...).ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated, "missing API token")
			_, err = walletClient(env, "sgl_notatoken", p.opts...).ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
			wantCode(t, err, connect.CodeUnauthenticated, "invalid API token")
			ro := walletClient(env, readOnly, p.opts...)
			if _, err := ro.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{})); err != nil {
				t.Fatalf("read-only token cannot read: %v", err)
			}
			_, err = ro.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{}))
			wantCode(t, err, connect.CodePermissionDenied, "wallets:write")
			_, err = ro.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", Payload: &walletv1.CreateSignatureRequest_Hash{Hash: make([]byte, 32)}}))
			wantCode(t, err, connect.CodePermissionDenied, "signatures:write")
		})
	}
}

func TestNoBackendConfigured(t *testing.T) {
	env := servertest.Start(t, servertest.Options{})
	c := walletClient(env, env.Token(t, auth.ScopeAdmin))
	_, err := c.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{}))
	wantCode(t, err, connect.CodeFailedPrecondition, "no key backend")
	_, err = c.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_MPC}))
	wantCode(t, err, connect.CodeFailedPrecondition, "--mpc-signers")
}

// TestPostgres runs the API against PostgreSQL, as several replicas would.
func TestPostgres(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Dialect: db.Postgres, Configure: func(c *server.Config) { c.HSM = true }})
	c := walletClient(env, env.Token(t, auth.ScopeAdmin), connect.WithGRPC())
	ctx := context.Background()
	r, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{ExternalId: "pg-1"}))
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
	if err != nil || len(l.Msg.GetWallets()) != 1 || l.Msg.GetWallets()[0].GetId() != r.Msg.GetWallet().GetId() {
		t.Fatalf("list: %v %v", l, err)
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() server.Config {
		return server.Config{NodeTLSCert: "c", NodeTLSKey: "k", NodeClientCA: "ca"}
	}
	for _, tc := range []struct {
		name string
		edit func(*server.Config)
		want string
	}{
		{"threshold above n", func(c *server.Config) { c.MPCSigners = []string{"a", "b"}; c.MPCThreshold = 3 }, "--mpc-threshold"},
		{"threshold 1", func(c *server.Config) { c.MPCSigners = []string{"a", "b"}; c.MPCThreshold = 1 }, "--mpc-threshold 1"},
		{"duplicate signer", func(c *server.Config) { c.MPCSigners = []string{"a", "a"}; c.MPCThreshold = 2 }, "twice"},
		{"bad signer name", func(c *server.Config) { c.MPCSigners = []string{"A,b", "c"}; c.MPCThreshold = 2 }, "--mpc-signers"},
		{"no node certs", func(c *server.Config) { c.NodeTLSCert = "" }, "--node-tls-cert"},
		{"bad api addr", func(c *server.Config) { c.APIAddr = "8080" }, "--api-addr"},
		{"mysql url", func(c *server.Config) { c.DatabaseURL = "mysql://x" }, "--database-url"},
		{"bad cors", func(c *server.Config) { c.CORSOrigins = []string{"example.com"} }, "--cors-origin"},
		{"hsm default without hsm", func(c *server.Config) { c.DefaultBackend = "hsm" }, "--hsm"},
		// Fail closed: HSM keys must be attested unless explicitly waived.
		{"hsm without attestation keys", func(c *server.Config) { c.HSM = true }, "--hsm-attestation-key"},
		{"max lease under lease", func(c *server.Config) { c.HSMLease, c.HSMMaxLease = time.Minute, time.Second }, "--hsm-max-lease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.edit(&c)
			c.SetDefaults()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	c := base()
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.HSM, c.HSMAllowUnattested = true, true
	if err := c.Validate(); err != nil {
		t.Fatalf("--hsm with --hsm-allow-unattested-keys: %v", err)
	}
}
