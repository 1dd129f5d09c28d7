package gate_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/gate"
)

const secret = "0123456789abcdef0123456789abcdef"

func secretFile(t *testing.T, mode os.FileMode) string {
	p := filepath.Join(t.TempDir(), "gate-secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	file := secretFile(t, 0o600)
	req := &gate.Request{Signer: "signer-1", SignatureID: "sig_1", WalletID: "wal_1", Kind: "hash", Digest: "00"}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string // "" approve, "refused: X", or a fragment of the failure
	}{
		{"approve", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"approved": true}`) }, ""},
		{"refuse", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"approved": false, "reason": "amount over limit\u0000\n(daily)"}`)
		}, "refused: amount over limit  (daily)"},
		{"refuse, no reason", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"approved": false}`) }, "refused: no reason given"},
		{"500", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"approved": true}`)
		}, "HTTP 500"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, "HTTP 302"},
		{"huge body", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"approved": true, "reason": "`+strings.Repeat("x", gate.MaxResponse)+`"}`)
		}, "larger than"},
		{"invalid JSON", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `approved`) }, "not {"},
		{"approved missing", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok": true}`) }, "not {"},
		{"approved not a bool", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"approved": "true"}`) }, "not {"},
		{"trailing data", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"approved": true} {}`) }, "not {"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var header string
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				header = r.Header.Get(gate.Header)
				body, _ = io.ReadAll(r.Body)
				c.handler(w, r)
			}))
			defer srv.Close()
			cl, err := gate.New(gate.Config{URL: srv.URL, SecretFile: file})
			if err != nil {
				t.Fatal(err)
			}
			err = cl.Check(context.Background(), req)
			if verr := gate.VerifyHeader([]byte(secret), header, body, time.Now(), time.Minute); verr != nil {
				t.Errorf("the gate could not authenticate the call: %v", verr)
			}
			if gate.VerifyHeader([]byte("another secret, sixteen+"), header, body, time.Now(), time.Minute) == nil {
				t.Error("the header verified under another secret")
			}
			var refusal *gate.Refusal
			switch {
			case c.want == "":
				if err != nil {
					t.Fatalf("not approved: %v", err)
				}
			case strings.HasPrefix(c.want, "refused: "):
				if !errors.As(err, &refusal) || refusal.Reason != strings.TrimPrefix(c.want, "refused: ") {
					t.Fatalf("got %v, want refusal %q", err, c.want)
				}
			default:
				if !errors.Is(err, gate.ErrFailed) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want a failure mentioning %q", err, c.want)
				}
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatal("the secret appears in an error")
			}
		})
	}
}

func TestTimeoutAndDown(t *testing.T) {
	file := secretFile(t, 0o600)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	cl, err := gate.New(gate.Config{URL: slow.URL, SecretFile: file, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Check(context.Background(), &gate.Request{}); !errors.Is(err, gate.ErrFailed) || !strings.Contains(err.Error(), "in time") {
		t.Fatalf("slow gate: %v", err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	cl, _ = gate.New(gate.Config{URL: down.URL, SecretFile: file})
	if err := cl.Check(context.Background(), &gate.Request{}); !errors.Is(err, gate.ErrFailed) {
		t.Fatalf("gate down: %v", err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := gate.New(gate.Config{URL: "http://gate", SecretFile: secretFile(t, 0o640)}); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Fatalf("a group-readable secret was accepted: %v", err)
	}
	if _, err := gate.New(gate.Config{URL: "ftp://gate", SecretFile: secretFile(t, 0o600)}); err == nil {
		t.Fatal("an ftp URL was accepted")
	}
	if _, err := gate.New(gate.Config{URL: "http://gate"}); err == nil {
		t.Fatal("a gate without a secret was accepted")
	}
}
