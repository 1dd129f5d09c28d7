package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/sigil-wallet/sigil/internal/pki"
)

// DenyListPoll is how often the node port looks at its deny list for
// changes on its own, to cut off streams already open for a newly denied
// certificate. Handshakes and requests look at the file themselves.
const DenyListPoll = time.Second

// DenyGuard keeps denied node certificates off the node port: it refuses
// their TLS handshakes, their requests on connections opened before they
// were denied, and ends their open streams (ceremony watches, mailboxes,
// long polls) when the list changes.
type DenyGuard struct {
	list   *pki.DenyList
	logger *slog.Logger

	mu      sync.Mutex
	active  map[*activeRequest]struct{}
	checked uint64 // the list generation open requests were last checked against
}

type activeRequest struct {
	cert   *x509.Certificate
	cancel context.CancelCauseFunc
}

// NewDenyGuard guards the node port with list.
func NewDenyGuard(list *pki.DenyList, logger *slog.Logger) *DenyGuard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DenyGuard{list: list, logger: logger, active: map[*activeRequest]struct{}{}, checked: list.Generation()}
}

// VerifyConnection refuses the handshake of a denied certificate; chain it
// after the node port's own VerifyConnection.
func (g *DenyGuard) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return pki.ErrUnverified
	}
	if entry, denied := g.list.Denied(cs.VerifiedChains[0][0]); denied {
		g.logger.Warn("refused a denied node certificate", "subject", cs.VerifiedChains[0][0].Subject.String(), "entry", entry)
		return fmt.Errorf("%w (%s)", pki.ErrDenied, entry)
	}
	return nil
}

// Middleware refuses requests from a denied certificate (a connection may
// outlive the denial) and tracks the others so Cut can end them.
func (g *DenyGuard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			next.ServeHTTP(w, r) // RequireIdentity refuses it
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		if entry, denied := g.list.Denied(cert); denied {
			writeError(w, r, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%w (%s)", pki.ErrDenied, entry)))
			g.Check() // the list may have just changed: cut off the rest of this node
			return
		}
		ctx, cancel := context.WithCancelCause(r.Context())
		req := &activeRequest{cert: cert, cancel: cancel}
		g.mu.Lock()
		g.active[req] = struct{}{}
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.active, req)
			g.mu.Unlock()
			cancel(nil)
		}()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Run watches the list until ctx ends, cutting off the requests of
// certificates that become denied.
func (g *DenyGuard) Run(ctx context.Context) {
	tick := time.NewTicker(DenyListPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			g.Check()
		}
	}
}

// Check re-reads the list if it changed and cuts off the open requests of
// certificates it now denies.
func (g *DenyGuard) Check() {
	if _, err := g.list.Refresh(); err != nil {
		g.logger.Error("node deny list not reloaded", "error", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gen := g.list.Generation()
	if gen == g.checked {
		return
	}
	g.checked = gen
	g.logger.Info("node deny list reloaded", "path", g.list.Path(), "entries", g.list.Len())
	for req := range g.active {
		if entry, denied := g.list.Denied(req.cert); denied {
			g.logger.Warn("cutting off a denied node", "subject", req.cert.Subject.String(), "entry", entry)
			req.cancel(errors.Join(pki.ErrDenied, errors.New(entry)))
		}
	}
}
