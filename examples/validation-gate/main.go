// Command validation-gate is an example of the validation gate an operator
// runs beside its signers and HSM drivers (`--validation-gate-url`). It
// checks that each call comes from a node holding the shared secret (the
// Sigil-Signature header: "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">"), refuses stale and replayed calls, and approves by a
// rule: only signed requests, only from the listed requester keys, only
// for the listed wallets (when any are listed), and EIP-191 messages only
// up to a size.
//
// It uses the standard library only, so it can be copied as the start of
// a real gate. Run:
//
//	openssl rand -hex 32 > gate-secret && chmod 600 gate-secret
//	go run ./examples/validation-gate --secret-file gate-secret --allow-key app
//	sigil signer ... --validation-gate-url http://127.0.0.1:8900/check --validation-gate-secret-file gate-secret
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// request is what a signer or driver sends (see internal/gate.Request).
type request struct {
	Signer       string `json:"signer"`
	SignatureID  string `json:"signature_id"`
	RequestID    string `json:"request_id"`
	WalletID     string `json:"wallet_id"`
	Kind         string `json:"kind"`
	Message      string `json:"message"`
	Digest       string `json:"digest"`
	ExternalID   string `json:"external_id"`
	RequesterKey string `json:"requester_key"`
	Signed       bool   `json:"signed"`
}

type answer struct {
	Approved bool   `json:"approved"`
	Reason   string `json:"reason,omitempty"`
}

// rule is what this gate approves.
type rule struct {
	keys       []string // requester key names allowed
	wallets    []string // wallet ids allowed; empty: any
	maxMessage int      // longest EIP-191 message, in bytes
}

func (r rule) decide(req *request) answer {
	switch {
	case !req.Signed:
		return answer{Reason: "unsigned requests are not approved"}
	case !slices.Contains(r.keys, req.RequesterKey):
		return answer{Reason: fmt.Sprintf("requester key %q is not allowed", req.RequesterKey)}
	case len(r.wallets) > 0 && !slices.Contains(r.wallets, req.WalletID):
		return answer{Reason: "wallet " + req.WalletID + " is not allowed"}
	case req.Kind == "eip191" && len(req.Message) > r.maxMessage:
		return answer{Reason: fmt.Sprintf("message longer than %d bytes", r.maxMessage)}
	}
	return answer{Approved: true}
}

// handler is the gate's HTTP handler.
type handler struct {
	secret    []byte
	rule      rule
	tolerance time.Duration
	now       func() time.Time
	logger    *slog.Logger

	mu   sync.Mutex
	seen map[string]time.Time // HMACs already accepted, until they are stale
}

func (g *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if err := g.authenticate(r.Header.Get("Sigil-Signature"), body); err != nil {
		// Not from a node of ours: no answer a node would take for "yes".
		g.logger.Warn("call refused", "error", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	a := g.rule.decide(&req)
	g.logger.Info("decision", "signer", req.Signer, "signature", req.SignatureID, "wallet", req.WalletID,
		"requester_key", req.RequesterKey, "approved", a.Approved, "reason", a.Reason)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}

// authenticate checks the HMAC and its time, and refuses a replayed call.
func (g *handler) authenticate(header string, body []byte) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("missing or malformed Sigil-Signature header")
	}
	now := g.now()
	if d := now.Sub(time.Unix(sec, 0)); d > g.tolerance || d < -g.tolerance {
		return errors.New("stale Sigil-Signature timestamp")
	}
	m := hmac.New(sha256.New, g.secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
		return errors.New("bad Sigil-Signature HMAC")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, at := range g.seen {
		if now.Sub(at) > 2*g.tolerance {
			delete(g.seen, k)
		}
	}
	if _, ok := g.seen[sig]; ok {
		return errors.New("replayed call")
	}
	g.seen[sig] = now
	return nil
}

func main() {
	var addr, secretFile, keys, wallets string
	var maxMessage int
	flag.StringVar(&addr, "addr", "127.0.0.1:8900", "address to listen on")
	flag.StringVar(&secretFile, "secret-file", "", "the HMAC secret shared with the signers (--validation-gate-secret-file), mode 0600")
	flag.StringVar(&keys, "allow-key", "", "comma-separated requester key names to approve")
	flag.StringVar(&wallets, "allow-wallet", "", "comma-separated wallet ids to approve (default: any)")
	flag.IntVar(&maxMessage, "max-message", 4096, "longest EIP-191 message approved, in bytes")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	secret, err := readSecret(secretFile)
	if err != nil {
		logger.Error("secret", "error", err)
		os.Exit(2)
	}
	g := newGate(secret, rule{keys: split(keys), wallets: split(wallets), maxMessage: maxMessage}, logger)
	mux := http.NewServeMux()
	mux.Handle("/check", g)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("validation gate listening", "addr", addr, "path", "/check")
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("serve", "error", err)
		os.Exit(1)
	}
}

func newGate(secret []byte, r rule, logger *slog.Logger) *handler {
	return &handler{secret: secret, rule: r, tolerance: 5 * time.Minute, now: time.Now, logger: logger, seen: map[string]time.Time{}}
}

func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: group or others may read it; chmod 600 it", path)
	}
	b, err := os.ReadFile(path)
	return bytes.TrimSpace(b), err
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
