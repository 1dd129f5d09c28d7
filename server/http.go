package server

import (
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"

	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	"github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1/deliveryv1connect"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/observe"
	"github.com/sigil-wallet/sigil/server/node"
	"github.com/sigil-wallet/sigil/server/wire"
)

// CORS headers Connect, gRPC-Web and browsers need.
var (
	corsAllowHeaders = strings.Join([]string{
		"Authorization", "Content-Type", "Connect-Protocol-Version", "Connect-Timeout-Ms",
		"Grpc-Timeout", "X-Grpc-Web", "X-User-Agent", "Connect-Content-Encoding", "Connect-Accept-Encoding",
	}, ", ")
	corsExposeHeaders = strings.Join([]string{
		"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin", "Content-Encoding", "Connect-Content-Encoding",
	}, ", ")
)

// cors lets the configured browser origins call the API port. Requests
// from other origins get no CORS headers, so browsers refuse them; a
// preflight from such an origin is answered 403 so the failure is plain.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		allowed := s.cfg.corsAllows(origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				http.Error(w, "origin not allowed: add it with --cors-origin", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", "7200")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody refuses a body over max bytes without reading it whole: a
// declared Content-Length over the limit is refused at once, and a body
// that streams past it is cut off by MaxBytesReader (Connect then answers
// ResourceExhausted).
func limitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			err := wire.WithReason(connect.NewError(connect.CodeResourceExhausted, errTooLarge(max)),
				walletv1.ErrorReason_ERROR_REASON_REQUEST_TOO_LARGE)
			if ew := connect.NewErrorWriter(); ew.IsSupported(r) {
				_ = ew.Write(w, r, err)
				return
			}
			http.Error(w, err.Message(), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

type errTooLarge int64

func (e errTooLarge) Error() string {
	return "request body larger than the server's limit of " + formatBytes(int64(e)) + " (--max-request-bytes)"
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " bytes"
	}
}

// nodeHandler serves the signer and driver services behind mTLS identity
// and role checks.
func (s *Server) nodeHandler() (http.Handler, error) {
	opts := append(wire.HandlerOptions(s.logger,
		observe.NewInterceptor(s.registry, "node", s.logger),
		node.RoleInterceptor{},
	), connect.WithReadMaxBytes(nodeMaxRequestBytes),
		// What crosses the node port is mostly random bytes (relayed
		// ciphertexts, wrapped keys, digests, signatures) that gzip cannot
		// shrink: compressing it only burns CPU on both ends.
		connect.WithCompression("gzip", nil, nil))
	mux := http.NewServeMux()
	mux.Handle(ceremonyv1connect.NewCeremonyServiceHandler(s.mpc.CeremonyService(), opts...))
	mux.Handle(deliveryv1connect.NewDeliveryServiceHandler(s.mpc.DeliveryService(), opts...))
	drivers, err := node.NewDriverServer(s.queue, s.attest, s.registry, s.logger.With("component", "jobs"))
	if err != nil {
		return nil, err
	}
	mux.Handle(driverv1connect.NewDriverServiceHandler(drivers, opts...))
	h := node.RequireIdentity(limitBody(mux, nodeMaxRequestBytes))
	if s.deny != nil {
		h = s.deny.Middleware(h)
	}
	return h, nil
}
