package sigil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
)

// DefaultTimeout bounds each call whose context has no deadline, unless
// WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// Client calls Sigil's WalletService. It is safe for concurrent use; make one
// and share it.
type Client struct {
	baseURL    string
	timeout    time.Duration
	service    walletv1connect.WalletServiceClient
	requestKey *RequestKey
}

// Option configures a Client made by New.
type Option func(*config)

type config struct {
	token        string
	httpClient   connect.HTTPClient
	timeout      time.Duration
	protocol     connect.ClientOption
	interceptors []connect.Interceptor
	requestKey   *RequestKey
}

// WithRequestKey signs every CreateSignature (and so SignHash and
// SignMessage) with the application's request key; see RequestKey.
func WithRequestKey(k *RequestKey) Option {
	return func(c *config) { c.requestKey = k }
}

// WithToken sets the API token, sent as "Authorization: Bearer <token>" on
// every call. It is required: make one with `sigil token create`, or use the
// admin token that `sigil dev` prints and writes to dev.json.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithHTTPClient replaces the HTTP client. By default the client speaks
// HTTP/2 without TLS (h2c) to http:// URLs, as the API port does when it has
// no certificate, and HTTP/2 or HTTP/1.1 over TLS to https:// URLs. A
// replacement must be able to reach the URL given to New; for gRPC it must
// speak HTTP/2.
func WithHTTPClient(client connect.HTTPClient) Option {
	return func(c *config) { c.httpClient = client }
}

// WithTimeout sets how long a call may take when its context has no
// deadline (default DefaultTimeout); 0 means no limit. A context deadline
// always wins, so set one to give a single call more or less time.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithGRPC makes the client speak gRPC instead of the Connect protocol.
// Both are served on the API port; gRPC needs HTTP/2, which the default HTTP
// client provides.
func WithGRPC() Option {
	return func(c *config) { c.protocol = connect.WithGRPC() }
}

// WithGRPCWeb makes the client speak gRPC-Web instead of the Connect
// protocol, as a browser would.
func WithGRPCWeb() Option {
	return func(c *config) { c.protocol = connect.WithGRPCWeb() }
}

// WithInterceptors adds Connect interceptors (logging, tracing, metrics)
// that run on every call, after the token is set.
func WithInterceptors(interceptors ...connect.Interceptor) Option {
	return func(c *config) { c.interceptors = append(c.interceptors, interceptors...) }
}

// New returns a client of the Sigil API port at baseURL, such as
// http://127.0.0.1:8080 (the address `sigil dev` prints). It fails, without
// any network call, when baseURL is not an http:// or https:// URL or when no
// token is given with WithToken.
func New(baseURL string, opts ...Option) (*Client, error) {
	base, err := checkBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	cfg := config{timeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if strings.TrimSpace(cfg.token) == "" {
		return nil, errors.New("sigil: no API token: pass WithToken with a token from `sigil token create`, or the one `sigil dev` prints and writes to dev.json")
	}
	if cfg.timeout < 0 {
		return nil, fmt.Errorf("sigil: WithTimeout(%v): want a duration >= 0 (0 means none)", cfg.timeout)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = defaultHTTPClient(base)
	}
	copts := []connect.ClientOption{
		connect.WithInterceptors(append([]connect.Interceptor{callInterceptor(base, cfg.token, cfg.timeout)}, cfg.interceptors...)...),
	}
	if cfg.protocol != nil {
		copts = append(copts, cfg.protocol)
	}
	return &Client{baseURL: base, timeout: cfg.timeout, service: walletv1connect.NewWalletServiceClient(cfg.httpClient, base, copts...),
		requestKey: cfg.requestKey}, nil
}

// BaseURL returns the API URL the client calls, normalised.
func (c *Client) BaseURL() string { return c.baseURL }

// Service returns the generated WalletService client underneath, with the
// same token, timeout and protocol, for anything the helpers do not cover
// (one page of a list, request headers, ...).
func (c *Client) Service() walletv1connect.WalletServiceClient { return c.service }

// checkBaseURL returns baseURL without a trailing slash, or an error naming
// the mistake.
func checkBaseURL(baseURL string) (string, error) {
	raw := strings.TrimSpace(baseURL)
	if raw == "" {
		return "", errors.New("sigil: empty base URL: want the URL of the Sigil API port, e.g. http://127.0.0.1:8080 (`sigil dev` prints it and writes it to dev.json)")
	}
	if !strings.Contains(raw, "://") {
		return "", fmt.Errorf("sigil: base URL %q must start with http:// or https://, e.g. http://127.0.0.1:8080", baseURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("sigil: base URL %q is not a URL (%v); want e.g. http://127.0.0.1:8080", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("sigil: base URL %q must start with http:// or https://, e.g. http://127.0.0.1:8080", baseURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("sigil: base URL %q has no host; want e.g. http://127.0.0.1:8080", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("sigil: base URL %q must not have a query, fragment or user info", baseURL)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// defaultHTTPClient speaks h2c to http:// URLs (the API port without TLS
// serves HTTP/2 in clear, which gRPC needs) and ordinary TLS to https://.
func defaultHTTPClient(base string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(base, "http://") {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	} else {
		tr.ForceAttemptHTTP2 = true
	}
	return &http.Client{Transport: tr}
}

// callInterceptor sets the bearer token, applies the default timeout to
// calls whose context has no deadline, and turns failures to reach the
// server into errors that say which URL was tried. Errors the server sent
// pass through unchanged.
func callInterceptor(base, token string, timeout time.Duration) connect.UnaryInterceptorFunc {
	bearer := "Bearer " + token
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", bearer)
			applied := false
			if _, ok := ctx.Deadline(); !ok && timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
				applied = true
			}
			res, err := next(ctx, req)
			if err != nil {
				return nil, explain(err, base, req.Spec().Procedure, applied, timeout, ctx)
			}
			return res, nil
		}
	}
}

func explain(err error, base, procedure string, timeoutApplied bool, timeout time.Duration, ctx context.Context) error {
	if connect.IsWireError(err) {
		return err
	}
	method := procedure[strings.LastIndex(procedure, "/")+1:]
	cause := errors.Unwrap(err)
	if cause == nil {
		cause = err
	}
	switch code := connect.CodeOf(err); {
	case code == connect.CodeDeadlineExceeded && timeoutApplied && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return connect.NewError(code, fmt.Errorf("sigil: %s timed out after %v (set WithTimeout, or give the context a deadline): %w", method, timeout, cause))
	case code == connect.CodeUnavailable:
		return connect.NewError(code, fmt.Errorf("cannot reach the Sigil API at %s (is the server running, and is this its API port?): %w", base, cause))
	case code == connect.CodeUnimplemented || code == connect.CodeUnknown && strings.Contains(err.Error(), "HTTP status"):
		return connect.NewError(code, fmt.Errorf("the server at %s does not serve sigil.wallet.v1.WalletService/%s (is this the Sigil API port?): %w", base, method, cause))
	}
	return err
}
