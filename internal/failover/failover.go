// Package failover lets a signer or an HSM driver know several coordinator
// replicas: an http.RoundTripper sends every request to the current one and
// moves to the next when a request fails to reach it, so that the caller's
// own retry (drivers and signers retry every call that found the
// coordinator unavailable) reaches a live replica. A unary request that
// could not even be connected is retried at once on the next replica: it
// was never sent, so sending it elsewhere cannot run it twice.
package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Timeouts that bound how long a dead or frozen replica holds a caller
// before it moves on: the TLS handshake, and HTTP/2 health pings on an idle
// connection (a replica paused with SIGSTOP accepts TCP but never answers).
const (
	TLSHandshakeTimeout = 5 * time.Second
	PingAfterIdle       = 10 * time.Second
	PingTimeout         = 5 * time.Second
)

// ParseURLs reads a comma-separated list of https:// node-port URLs (a
// bare host:port means https). flag names the flag in errors.
func ParseURLs(list, flag string) ([]*url.URL, error) {
	var out []*url.URL
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		base := raw
		if !strings.Contains(base, "://") {
			base = "https://" + base
		}
		u, err := url.Parse(base)
		if err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("%s %q: want https://host:port (the node port is mTLS only; several URLs are separated by commas)", flag, raw)
		}
		out = append(out, &url.URL{Scheme: u.Scheme, Host: u.Host})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no URL given", flag)
	}
	return out, nil
}

// Transport is the failover RoundTripper.
type Transport struct {
	base      http.RoundTripper
	endpoints []*url.URL
	cur       atomic.Uint64
	logger    *slog.Logger
}

// New returns a transport over base (see NewHTTPTransport) for the
// endpoints, in order of preference.
func New(base http.RoundTripper, endpoints []*url.URL, logger *slog.Logger) *Transport {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Transport{base: base, endpoints: endpoints, logger: logger}
}

// NewHTTPTransport is an HTTP/2 transport with the timeouts above.
func NewHTTPTransport(t *http.Transport) *http.Transport {
	t.ForceAttemptHTTP2 = true
	t.TLSHandshakeTimeout = TLSHandshakeTimeout
	if t.IdleConnTimeout == 0 {
		t.IdleConnTimeout = 90 * time.Second
	}
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: PingAfterIdle, PingTimeout: PingTimeout}
	return t
}

// BaseURL is the URL to build clients on; the transport replaces its host
// with the current endpoint's on every request.
func (t *Transport) BaseURL() string { return t.endpoints[0].String() }

// Current is the endpoint requests go to now.
func (t *Transport) Current() string {
	return t.endpoints[t.cur.Load()%uint64(len(t.endpoints))].String()
}

// RoundTrip sends req to the current endpoint. See the package comment.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := uint64(len(t.endpoints))
	for try := uint64(0); ; try++ {
		i := t.cur.Load()
		ep := t.endpoints[i%n]
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = ep.Scheme, ep.Host, ""
		if try > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			out.Body = body
		}
		resp, err := t.base.RoundTrip(out)
		if err == nil || n == 1 || errors.Is(req.Context().Err(), context.Canceled) {
			return resp, err
		}
		if t.cur.CompareAndSwap(i, i+1) {
			t.logger.Warn("coordinator unreachable; failing over to the next URL",
				"from", ep.Host, "to", t.endpoints[(i+1)%n].Host, "error", err)
		}
		// Only a request that never left (the connection failed) is sent
		// again at once, and only while an endpoint is left to try.
		replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		if !notSent(err) || !replayable || try+1 >= n {
			return nil, err
		}
	}
}

// notSent reports whether err means the request could not be sent at all.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
