package sigil_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

// protocols are the wire protocols the API port serves; the end-to-end
// tests run over each.
var protocols = []struct {
	name string
	opt  sigil.Option
}{
	{"connect", nil},
	{"grpc", sigil.WithGRPC()},
	{"grpcweb", sigil.WithGRPCWeb()},
}

func newClient(t *testing.T, url, token string, opts ...sigil.Option) *sigil.Client {
	t.Helper()
	all := []sigil.Option{sigil.WithToken(token)}
	for _, o := range opts {
		if o != nil {
			all = append(all, o)
		}
	}
	c, err := sigil.New(url, all...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		opts      []sigil.Option
		want      string
	}{
		{"empty URL", "", []sigil.Option{sigil.WithToken("t")}, "empty base URL"},
		{"blank URL", "   ", []sigil.Option{sigil.WithToken("t")}, "empty base URL"},
		{"no scheme", "127.0.0.1:8080", []sigil.Option{sigil.WithToken("t")}, "http:// or https://"},
		{"other scheme", "ftp://example.com", []sigil.Option{sigil.WithToken("t")}, "http:// or https://"},
		{"no host", "http://", []sigil.Option{sigil.WithToken("t")}, "no host"},
		{"query", "http://127.0.0.1:8080/?a=b", []sigil.Option{sigil.WithToken("t")}, "query"},
		{"not a URL", "http://[::1", []sigil.Option{sigil.WithToken("t")}, "not a URL"},
		{"no token", "http://127.0.0.1:8080", nil, "no API token"},
		{"blank token", "http://127.0.0.1:8080", []sigil.Option{sigil.WithToken(" ")}, "no API token"},
		{"negative timeout", "http://127.0.0.1:8080", []sigil.Option{sigil.WithToken("t"), sigil.WithTimeout(-time.Second)}, "WithTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := sigil.New(tc.url, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%q) = %v, %v; want an error containing %q", tc.url, c, err, tc.want)
			}
		})
	}
	c, err := sigil.New("https://sigil.example.com/api/", sigil.WithToken("t"))
	if err != nil || c.BaseURL() != "https://sigil.example.com/api" {
		t.Fatalf("New = %v, %v", c, err)
	}
}

func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			client := newClient(t, url, "t", proto.opt, sigil.WithTimeout(5*time.Second))
			start := time.Now()
			_, err := client.GetWallet(t.Context(), "wal_"+strings.Repeat("0", 26))
			if !sigil.IsUnavailable(err) || !strings.Contains(err.Error(), url) || time.Since(start) > 5*time.Second {
				t.Fatalf("err = %v; want Unavailable naming %s", err, url)
			}
		})
	}
}

func TestDefaultTimeout(t *testing.T) {
	// A server that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	client := newClient(t, "http://"+ln.Addr().String(), "t", sigil.WithTimeout(200*time.Millisecond))
	start := time.Now()
	_, err = client.GetWallet(t.Context(), "wal_"+strings.Repeat("0", 26))
	if !sigil.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("err = %v; want DeadlineExceeded after 200ms", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestParseBackend(t *testing.T) {
	for in, want := range map[string]walletv1.Backend{
		"": walletv1.Backend_BACKEND_UNSPECIFIED, "mpc": walletv1.Backend_BACKEND_MPC, "HSM": walletv1.Backend_BACKEND_HSM,
		"BACKEND_MPC": walletv1.Backend_BACKEND_MPC,
	} {
		if got, err := sigil.ParseBackend(in); err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"tpm", "BACKEND_UNSPECIFIED", "1"} {
		if _, err := sigil.ParseBackend(in); err == nil {
			t.Errorf("ParseBackend(%q) succeeded", in)
		}
	}
}

// TestNotSigil points the client at an HTTP/2 server that is not Sigil.
func TestNotSigil(t *testing.T) {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	_, err := newClient(t, srv.URL, "t").GetWallet(t.Context(), "wal_"+strings.Repeat("0", 26))
	if connect.CodeOf(err) != connect.CodeUnimplemented || !strings.Contains(err.Error(), "is this the Sigil API port?") {
		t.Fatalf("err = %v", err)
	}
}
