package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/gate"
)

// TestWithSigilsGateClient calls the example with the client signers and
// drivers use: it must authenticate their calls and decide by its rule.
func TestWithSigilsGateClient(t *testing.T) {
	secret := "example-gate-secret-0123456789abcdef"
	g := newGate([]byte(secret), rule{keys: []string{"app"}, maxMessage: 10}, slog.New(slog.DiscardHandler))
	srv := httptest.NewServer(g)
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := gate.New(gate.Config{URL: srv.URL, SecretFile: file})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := client.Check(ctx, &gate.Request{SignatureID: "sig_1", WalletID: "wal_1", Kind: "hash", Signed: true, RequesterKey: "app"}); err != nil {
		t.Fatalf("a signed request by an allowed key: %v", err)
	}
	for _, c := range []struct {
		req  gate.Request
		want string
	}{
		{gate.Request{Kind: "hash"}, "unsigned"},
		{gate.Request{Kind: "hash", Signed: true, RequesterKey: "other"}, "not allowed"},
		{gate.Request{Kind: "eip191", Message: "a long message", Signed: true, RequesterKey: "app"}, "longer than"},
	} {
		var refusal *gate.Refusal
		if err := client.Check(ctx, &c.req); !errors.As(err, &refusal) || !strings.Contains(refusal.Reason, c.want) {
			t.Errorf("%+v: %v, want a refusal saying %q", c.req, err, c.want)
		}
	}
	// A call without the secret, and a replayed call, are not answered.
	res, err := http.Post(srv.URL, "application/json", strings.NewReader(`{"signed": true, "requester_key": "app"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated call: HTTP %d", res.StatusCode)
	}
	body := `{"signed": true, "requester_key": "app"}`
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	req.Header.Set(gate.Header, gate.SignHeader([]byte(secret), g.now(), []byte(body)))
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		req.Body = io.NopCloser(strings.NewReader(body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != want {
			t.Errorf("call %d: HTTP %d, want %d", i+1, res.StatusCode, want)
		}
	}
}
