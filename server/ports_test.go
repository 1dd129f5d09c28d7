package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
)

func TestHealthAndReflection(t *testing.T) {
	env := startMPC(t)
	ctx := context.Background()
	// List services through gRPC reflection, as grpcurl does.
	rc := grpcreflect.NewClient(servertest.H2CClient(), env.APIURL)
	stream := rc.NewStream(ctx)
	defer stream.Close()
	names, err := stream.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, string(n))
	}
	for _, want := range []string{walletv1connect.WalletServiceName, grpchealth.HealthV1ServiceName, grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Fatalf("reflection lists %v, missing %s", got, want)
		}
	}
	if strings.Contains(strings.Join(got, " "), "Ceremony") {
		t.Fatalf("reflection on the API port exposes node services: %v", got)
	}
	// Health over the Connect protocol with JSON, no token needed.
	res, err := http.Post(env.APIURL+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "SERVING_STATUS_SERVING") {
		t.Fatalf("health: %d %s", res.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	env := startMPC(t)
	c := walletClient(env, env.Token(t, auth.ScopeAdmin))
	_, _ = c.ListWallets(context.Background(), connect.NewRequest(&walletv1.ListWalletsRequest{}))
	_, _ = walletClient(env, "").ListWallets(context.Background(), connect.NewRequest(&walletv1.ListWalletsRequest{}))
	res, err := http.Get("http://" + env.Server.Addr("metrics") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`sigil_rpc_requests_total{code="ok",port="api",procedure="/sigil.wallet.v1.WalletService/ListWallets"} 1`,
		`sigil_rpc_requests_total{code="unauthenticated",port="api",procedure="/sigil.wallet.v1.WalletService/ListWallets"} 1`,
		`sigil_rpc_duration_seconds_bucket{code="ok",port="api",procedure="/sigil.wallet.v1.WalletService/ListWallets"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

func TestCORS(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) { c.CORSOrigins = []string{"http://app.test"} }})
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, env.APIURL+walletv1connect.WalletServiceListWalletsProcedure, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,connect-protocol-version")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	ok := preflight("http://app.test")
	if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != "http://app.test" ||
		!strings.Contains(ok.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed origin preflight: %d %v", ok.StatusCode, ok.Header)
	}
	bad := preflight("http://evil.test")
	if bad.StatusCode != http.StatusForbidden || bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin preflight: %d %v", bad.StatusCode, bad.Header)
	}
}

// wantHandshakeRefused checks a call was refused at the TLS handshake. With
// TLS 1.3 the server checks the client certificate after the client already
// sent its request, so depending on timing the client sees the alert, a
// reset or a broken pipe: never an answer from a handler.
func wantHandshakeRefused(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded")
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeCanceled, connect.CodeUnknown:
	default:
		t.Fatalf("the call reached the server: %v", err)
	}
}

// TestNodePortRequiresMTLS shows the node port refuses callers without a
// certificate of the node CA, and refuses API tokens.
func TestNodePortRequiresMTLS(t *testing.T) {
	env := startMPC(t)
	ctx := context.Background()
	call := func(hc *http.Client, opts ...connect.ClientOption) error {
		c := ceremonyv1connect.NewCeremonyServiceClient(hc, env.NodeURL, opts...)
		_, err := c.GetCeremony(ctx, connect.NewRequest(&ceremonyv1.GetCeremonyRequest{CeremonyId: "cer_aaaaaaaaaaaaaaaaaaaaaaaaaa"}))
		return err
	}
	roots, err := pki.LoadCertPool(env.PKI.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no client certificate", func(t *testing.T) {
		hc := servertest.NodeHTTPClient(&tls.Config{RootCAs: roots, ServerName: "localhost"})
		wantHandshakeRefused(t, call(hc))
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		other, err := pki.EnsureDevPKI(filepath.Join(t.TempDir(), "other"), []string{"signer-1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pki.LoadKeyPair(other.Nodes["signer-1"].CertPath, other.Nodes["signer-1"].KeyPath)
		if err != nil {
			t.Fatal(err)
		}
		hc := servertest.NodeHTTPClient(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}})
		wantHandshakeRefused(t, call(hc))
	})
	t.Run("signer certificate", func(t *testing.T) {
		err := call(env.NodeClient(t, "signer-x"))
		if connect.CodeOf(err) == connect.CodeUnauthenticated || connect.CodeOf(err) == connect.CodePermissionDenied {
			t.Fatalf("a signer of the node CA was refused: %v", err)
		}
	})
	t.Run("driver calling a signer service", func(t *testing.T) {
		wantCode(t, call(env.NodeClient(t, "driver-x")), connect.CodePermissionDenied, "driver")
	})
	t.Run("api token on the node port", func(t *testing.T) {
		token := env.Token(t, auth.ScopeAdmin)
		wantCode(t, call(env.NodeClient(t, "signer-x"), connect.WithInterceptors(bearer(token))), connect.CodeUnauthenticated, "not accepted on the node port")
	})
	t.Run("certificate on the API port does not replace a token", func(t *testing.T) {
		// The API port has no TLS here; a node client cannot even connect.
		// Over h2c, a request without a token is refused whatever else it has.
		_, err := walletClient(env, "").ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
		wantCode(t, err, connect.CodeUnauthenticated, "")
	})
}

// TestSignersRefusedWithoutMPC: a coordinator without --mpc-signers (say,
// an API-only replica) refuses signers instead of running ceremonies.
func TestSignersRefusedWithoutMPC(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) { c.HSM = true }})
	c := ceremonyv1connect.NewCeremonyServiceClient(env.NodeClient(t, "signer-x"), env.NodeURL)
	_, err := c.GetCeremony(context.Background(), connect.NewRequest(&ceremonyv1.GetCeremonyRequest{CeremonyId: "cer_aaaaaaaaaaaaaaaaaaaaaaaaaa"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "no MPC signer group")
}

// TestAPIPortTLS serves the API over TLS when given a certificate, and a
// client that trusts its CA calls it over HTTP/2.
func TestAPIPortTLS(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.HSM = true
		c.APITLSCert, c.APITLSKey = c.NodeTLSCert, c.NodeTLSKey // the dev PKI's server certificate
	}})
	if !strings.HasPrefix(env.APIURL, "https://") {
		t.Fatalf("API URL %s, want https", env.APIURL)
	}
	roots, err := pki.LoadCertPool(env.PKI.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	hc := servertest.NodeHTTPClient(&tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	token := env.Token(t, auth.ScopeWalletsRead)
	c := walletv1connect.NewWalletServiceClient(hc, env.APIURL, connect.WithGRPC(), connect.WithInterceptors(bearer(token)))
	if _, err := c.ListWallets(context.Background(), connect.NewRequest(&walletv1.ListWalletsRequest{})); err != nil {
		t.Fatalf("ListWallets over TLS: %v", err)
	}
	// A client that does not trust the CA is refused at the handshake.
	untrusting := walletv1connect.NewWalletServiceClient(servertest.NodeHTTPClient(&tls.Config{MinVersion: tls.VersionTLS12}), env.APIURL,
		connect.WithInterceptors(bearer(token)))
	_, err = untrusting.ListWallets(context.Background(), connect.NewRequest(&walletv1.ListWalletsRequest{}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("call without trusting the CA: %v", err)
	}
}
