package failover_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/failover"
)

// deadURL is an address nothing listens on.
func deadURL(t *testing.T) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return &url.URL{Scheme: "http", Host: addr}
}

func live(t *testing.T, name string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, name+":"+string(body))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func post(t *testing.T, c *http.Client, ctx context.Context, base string, body io.Reader) (string, error) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/svc/Method", body)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), nil
}

// TestFailover: a replaying request to a dead first replica goes to the
// next at once and stays there; a request whose body cannot be replayed
// fails, but moves the transport on so that the caller's retry succeeds; a
// cancelled request moves nothing.
func TestFailover(t *testing.T) {
	dead, a, b := deadURL(t), live(t, "a"), live(t, "b")
	ft := failover.New(http.DefaultTransport, []*url.URL{dead, a, b}, nil)
	c := &http.Client{Transport: ft}

	got, err := post(t, c, t.Context(), ft.BaseURL(), strings.NewReader("x"))
	if err != nil || got != "a:x" {
		t.Fatalf("first call = %q, %v; want it served by a", got, err)
	}
	if ft.Current() != a.String() {
		t.Fatalf("current = %s, want %s", ft.Current(), a)
	}

	// a dies: a streaming body (no GetBody) is not replayed.
	ft2 := failover.New(http.DefaultTransport, []*url.URL{deadURL(t), b}, nil)
	c2 := &http.Client{Transport: ft2}
	pr, pw := io.Pipe()
	go func() { _, _ = io.WriteString(pw, "stream"); _ = pw.Close() }()
	if _, err := post(t, c2, t.Context(), ft2.BaseURL(), struct{ io.Reader }{pr}); err == nil {
		t.Fatal("a streaming request to a dead replica succeeded; it cannot have been replayed")
	}
	if got, err := post(t, c2, t.Context(), ft2.BaseURL(), strings.NewReader("y")); err != nil || got != "b:y" {
		t.Fatalf("retry = %q, %v; want it served by b", got, err)
	}

	// A cancelled call says nothing about the replica.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := post(t, c, ctx, ft.BaseURL(), strings.NewReader("z")); err == nil {
		t.Fatal("cancelled call succeeded")
	}
	if ft.Current() != a.String() {
		t.Fatalf("a cancelled call moved the transport to %s", ft.Current())
	}
}

func TestParseURLs(t *testing.T) {
	got, err := failover.ParseURLs(" https://a:1, b:2 ,", "--node-url")
	if err != nil || len(got) != 2 || got[0].String() != "https://a:1" || got[1].String() != "https://b:2" {
		t.Fatalf("ParseURLs = %v, %v", got, err)
	}
	for _, bad := range []string{"", "http://a:1", "https://a:1/path", "https://"} {
		if _, err := failover.ParseURLs(bad, "--node-url"); err == nil || !strings.Contains(err.Error(), "--node-url") {
			t.Errorf("ParseURLs(%q) = %v, want an error naming the flag", bad, err)
		}
	}
}
