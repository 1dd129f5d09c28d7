// Package gate is the client of an operator's validation gate: an HTTP
// endpoint a signer or HSM driver asks before it takes part in any
// signature. Each call POSTs JSON describing the request, authenticated by
// a timestamped HMAC-SHA256 of the body in the Sigil-Signature header
// ("t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">"), so the handler
// can tell the node's calls from anyone else's and refuse stale or
// replayed ones. Only HTTP 200 with {"approved": true} approves; a refusal
// carries the gate's reason; anything else (timeout, connection error,
// another status, a redirect, a body too large or not the expected JSON)
// is an error, and the caller signs nothing: the gate fails closed.
package gate

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sigil-wallet/sigil/internal/reqsig"
)

// Defaults, defined once for flags, dev mode and library.
const (
	// DefaultTimeout bounds one gate call, connection included.
	DefaultTimeout = 10 * time.Second
	// MaxResponse is the largest answer read from a gate.
	MaxResponse = 64 << 10
	// MaxReason bounds the gate's reason as passed on to the application.
	MaxReason = 200
	// Header carries the HMAC of each call.
	Header = "Sigil-Signature"
	// minSecret is the shortest secret accepted.
	minSecret = 16
)

// ErrFailed marks every way a gate call can fail without an answer.
var ErrFailed = errors.New("the validation gate could not be asked")

// Refusal is a gate's "no", with its sanitised reason.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "the validation gate refused: " + r.Reason }

// Config selects a gate.
type Config struct {
	// URL is the gate's http:// or https:// endpoint.
	URL string
	// SecretFile holds the HMAC key (at least 16 bytes; surrounding
	// whitespace is ignored); group or other permission bits are refused.
	SecretFile string
	// Timeout bounds each call (default DefaultTimeout).
	Timeout time.Duration
	// Transport, when set, replaces the default (tests).
	Transport http.RoundTripper
}

// Client calls one gate.
type Client struct {
	url    string
	secret []byte
	hc     *http.Client
	now    func() time.Time
}

// New checks cfg and loads the secret. Error messages name the flag.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--validation-gate-url %q: want an http:// or https:// URL", cfg.URL)
	}
	if cfg.SecretFile == "" {
		return nil, errors.New("--validation-gate-secret-file is required with --validation-gate-url: the gate authenticates calls by their HMAC")
	}
	raw, err := reqsig.ReadSecretFile(cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("--validation-gate-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(raw)
	if len(secret) < minSecret {
		return nil, fmt.Errorf("--validation-gate-secret-file: the secret is %d bytes; want at least %d (e.g. openssl rand -hex 32)", len(secret), minSecret)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	transport := cfg.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &Client{url: cfg.URL, secret: bytes.Clone(secret), now: time.Now, hc: &http.Client{
		Timeout: timeout, Transport: transport,
		// A gate that redirects is misconfigured: follow nothing, and the
		// 3xx status fails the call.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// Addresses are the wallet's addresses, for the gate's rules.
type Addresses struct {
	Ethereum      string `json:"ethereum,omitempty"`
	BitcoinP2WPKH string `json:"bitcoin_p2wpkh,omitempty"`
	BitcoinP2TR   string `json:"bitcoin_p2tr,omitempty"` // Schnorr (BIP-340) wallets
	Solana        string `json:"solana,omitempty"`       // Ed25519 wallets
}

// Request is what a gate is told about a signature request.
type Request struct {
	// Signer is the node asking: a signer's or a driver's name.
	Signer      string    `json:"signer"`
	SignatureID string    `json:"signature_id"`
	RequestID   string    `json:"request_id,omitempty"`
	WalletID    string    `json:"wallet_id"`
	PublicKey   string    `json:"public_key"` // hex, SEC1 compressed
	Addresses   Addresses `json:"addresses"`
	Kind        string    `json:"kind"`                  // "hash" or "eip191"
	Hash        string    `json:"hash,omitempty"`        // hex, for kind hash
	Message     string    `json:"message,omitempty"`     // for kind eip191
	RawMessage  string    `json:"raw_message,omitempty"` // hex, for kind raw-message (Ed25519)
	Digest      string    `json:"digest"`                // hex
	ExternalID  string    `json:"external_id,omitempty"`
	// RequesterKey is the verified request key's name; empty and Signed
	// false for an unsigned request.
	RequesterKey string `json:"requester_key,omitempty"`
	Signed       bool   `json:"signed"`
}

// answer is the gate's JSON answer; approved must be present.
type answer struct {
	Approved *bool  `json:"approved"`
	Reason   string `json:"reason"`
}

// Check asks the gate. It returns nil when the gate approves, a *Refusal
// when it refuses, and an error wrapping ErrFailed otherwise.
func (c *Client) Check(ctx context.Context, r *Request) error {
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrFailed, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(Header, SignHeader(c.secret, c.now(), body))
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrFailed, describe(err))
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxResponse+1))
	if err != nil {
		return fmt.Errorf("%w: reading the answer: %s", ErrFailed, describe(err))
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: it answered HTTP %d", ErrFailed, res.StatusCode)
	}
	if len(data) > MaxResponse {
		return fmt.Errorf("%w: its answer is larger than %d bytes", ErrFailed, MaxResponse)
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil || a.Approved == nil || dec.More() {
		return fmt.Errorf("%w: its answer is not {\"approved\": true|false, \"reason\": \"...\"}", ErrFailed)
	}
	if !*a.Approved {
		reason := Sanitize(a.Reason)
		if reason == "" {
			reason = "no reason given"
		}
		return &Refusal{Reason: reason}
	}
	return nil
}

// describe says what went wrong with a call without echoing URLs' secrets.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "it did not answer in time"
		}
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "it did not answer in time"
	}
	return Sanitize(err.Error())
}

// Sanitize makes a gate's text safe to store and show: printable
// characters only, at most MaxReason of them.
func Sanitize(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == MaxReason {
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// SignHeader is the Sigil-Signature header value for body at time t.
func SignHeader(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyHeader checks a Sigil-Signature header: the HMAC of body, made at
// most tolerance away from now. Gate handlers written in Go may use it;
// examples/validation-gate shows the same check in a few lines.
func VerifyHeader(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
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
		return errors.New("malformed " + Header + " header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("stale " + Header + " timestamp")
	}
	if !hmac.Equal([]byte(sig), []byte(mac(secret, ts, body))) {
		return errors.New("bad " + Header + " HMAC")
	}
	return nil
}
