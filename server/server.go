// Package server is the coordinator, `sigil server`: the API port where
// applications call WalletService, the node port where signers and drivers
// connect over mTLS, and the storage and orchestration behind them. New is
// the composition root: it builds everything from a Config, and Close takes
// it down in reverse order.
package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/observe"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server/api"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/ceremony"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/node"
	"github.com/sigil-wallet/sigil/server/settle"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

// Server is a running coordinator.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	store    *store.SQL
	registry *prometheus.Registry
	mpc      *ceremony.Orchestrator
	queue    *jobs.Queue
	attest   node.Attestation
	deny     *node.DenyGuard // nil without --node-deny-list
	// settled wakes API calls waiting for a wallet or signature outcome.
	settled *settle.Hub

	servers   []*http.Server
	listeners []net.Listener
	// nodeCtx is the base context of node-port requests; shutdown cancels
	// it first so ceremony streams, mailboxes and long polls end at once
	// (signers and drivers reconnect and retry), instead of holding the
	// graceful shutdown for its whole grace period.
	nodeCtx    context.Context
	stopNodeRq context.CancelFunc
	closers    []func() error // run in reverse order by Close
}

// New opens storage, builds the handlers and binds the ports. Nothing is
// served until Serve. On error, whatever was opened is closed again.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, registry: observe.NewRegistry(), settled: settle.New()}
	if err := s.build(ctx); err != nil {
		if cerr := s.Close(); cerr != nil {
			s.logger.Warn("closing after a failed start", "error", cerr)
		}
		return nil, err
	}
	return s, nil
}

// build opens and binds everything, in the order Close undoes.
func (s *Server) build(ctx context.Context) error {
	cfg := s.cfg
	if err := s.openStore(ctx); err != nil {
		return err
	}
	if err := s.buildOrchestrator(); err != nil {
		return err
	}
	s.queue = jobs.New(s.store, jobs.Config{Lease: cfg.HSMLease, MaxLease: cfg.HSMMaxLease, Retry: store.RetryPolicy{MaxAttempts: cfg.HSMMaxAttempts}, Settled: s.settled.Notify})
	var err error
	if s.attest, err = s.loadAttestation(); err != nil {
		return err
	}
	if cfg.NodeDenyList != "" {
		list, err := pki.OpenDenyList(cfg.NodeDenyList)
		if err != nil {
			return fmt.Errorf("--node-deny-list: %w", err)
		}
		s.deny = node.NewDenyGuard(list, s.logger.With("component", "node-deny-list"))
		s.logger.Info("node deny list loaded", "path", cfg.NodeDenyList, "entries", list.Len())
	}
	apiHandler, err := s.apiHandler()
	if err != nil {
		return err
	}
	if err := s.listen("api", cfg.APIAddr, apiHandler, s.apiTLS); err != nil {
		return err
	}
	if cfg.APITLSCert == "" && !isLoopback(cfg.APIAddr) {
		s.logger.Warn("the API port serves plaintext HTTP beyond loopback: API tokens and requests cross the network in the clear; "+
			"give --api-tls-cert and --api-tls-key, or bind --api-addr to 127.0.0.1 behind a TLS proxy", "addr", cfg.APIAddr)
	}
	nodeHandler, err := s.nodeHandler()
	if err != nil {
		return err
	}
	if err := s.listen("node", cfg.NodeAddr, nodeHandler, s.nodeTLS); err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", observe.MetricsHandler(s.registry))
		if err := s.listen("metrics", cfg.MetricsAddr, mux, nil); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) openStore(ctx context.Context) error {
	d, err := db.Open(ctx, db.Config{URL: s.cfg.DatabaseURL, SQLitePath: s.cfg.sqlitePath(), Logger: s.logger})
	if err != nil {
		return fmt.Errorf("open coordinator database: %w", err)
	}
	s.closers = append(s.closers, d.Close)
	st, err := store.Open(ctx, d)
	if err != nil {
		return err
	}
	s.store = st
	return nil
}

// buildOrchestrator makes the MPC orchestrator, which verifies signer
// announcements against the node CA.
func (s *Server) buildOrchestrator() error {
	roots, err := pki.LoadCertPool(s.cfg.NodeClientCA)
	if err != nil {
		return fmt.Errorf("--node-client-ca: %w", err)
	}
	s.mpc = ceremony.New(s.store, ceremony.Config{
		KeygenTimeout: s.cfg.KeygenTimeout,
		SignTimeout:   s.cfg.SignTimeout,
		QuorumWait:    s.cfg.QuorumWait,
		MaxConcurrent: s.cfg.MaxConcurrentCeremonies,
		Replica:       ceremony.ReplicaID(s.cfg.ReplicaName),
		SignerRoots:   roots,
		Disabled:      len(s.cfg.MPCSigners) == 0,
		Settled:       s.settled.Notify,
		PresignPool:   s.cfg.PresignPool,
		KeyPool:       s.cfg.KeyPool,
		KeyPoolGroup:  ceremony.Group{Threshold: s.cfg.MPCThreshold, Signers: s.cfg.MPCSigners},
		// The pool total is defaulted by SetDefaults.
		PresignPoolTotal: s.cfg.PresignPoolTotal,
		Logger:           s.logger.With("component", "mpc"),
		Registerer:       s.registry,
	})
	return nil
}

// loadAttestation reads the pinned HSM attestation keys.
func (s *Server) loadAttestation() (node.Attestation, error) {
	a := node.Attestation{AllowUnattested: s.cfg.HSMAllowUnattested}
	var keys []*ecdsa.PublicKey
	for _, path := range s.cfg.HSMAttestationKeys {
		data, err := os.ReadFile(path)
		if err != nil {
			return a, fmt.Errorf("--hsm-attestation-key: %w", err)
		}
		k, err := attest.ParsePEM(data)
		if err != nil {
			return a, fmt.Errorf("--hsm-attestation-key %s: %w", path, err)
		}
		keys = append(keys, k...)
	}
	if len(keys) > 0 {
		v, err := attest.NewVerifier(keys)
		if err != nil {
			return a, fmt.Errorf("--hsm-attestation-key: %w", err)
		}
		a.Verifier = v
	}
	if s.cfg.HSM && a.AllowUnattested {
		s.logger.Warn("HSM keys without an attestation are accepted (--hsm-allow-unattested-keys): " +
			"a stolen driver certificate can plant wallet keys; never run production like this")
	}
	return a, nil
}

// Attestation is the coordinator's HSM key attestation policy.
func (s *Server) Attestation() node.Attestation { return s.attest }

// OnlineSigners is how many MPC signers have a ceremony stream open.
func (s *Server) OnlineSigners() int { return s.mpc.Online() }

// Store returns the coordinator's store (for `sigil dev` and tests).
func (s *Server) Store() *store.SQL { return s.store }

// Registry returns the server's metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

func (s *Server) apiHandler() (http.Handler, error) {
	b := api.Backends{HSM: s.cfg.HSM, Default: s.cfg.defaultBackend()}
	if len(s.cfg.MPCSigners) > 0 {
		b.MPC = &api.MPCGroup{Threshold: s.cfg.MPCThreshold, Signers: s.cfg.MPCSigners}
	}
	opts := append(wire.HandlerOptions(s.logger,
		observe.NewInterceptor(s.registry, "api", s.logger),
		auth.NewInterceptor(s.store, api.Scopes, s.logger),
	), connect.WithReadMaxBytes(s.cfg.MaxRequestBytes))
	requests, err := s.cfg.requestPolicy()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(walletv1connect.NewWalletServiceHandler(
		s.walletServer(b).WithRequestPolicy(requests),
		opts...,
	))
	reflector := grpcreflect.NewStaticReflector(walletv1connect.WalletServiceName, grpchealth.HealthV1ServiceName,
		grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle(grpchealth.NewHandler(&healthChecker{db: s.store.DB()}))
	return s.cors(limitBody(mux, int64(s.cfg.MaxRequestBytes))), nil
}

func (s *Server) listen(name, addr string, h http.Handler, tlsConfig func() (*tls.Config, error)) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	if name == "node" {
		s.nodeCtx, s.stopNodeRq = context.WithCancel(context.Background())
		srv.BaseContext = func(net.Listener) context.Context { return s.nodeCtx }
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on the %s port %s: %w", name, addr, err)
	}
	if tlsConfig != nil {
		tc, err := tlsConfig()
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("%s port TLS: %w", name, err)
		}
		if tc != nil {
			tc.NextProtos = []string{"h2", "http/1.1"}
			srv.TLSConfig = tc
			ln = tls.NewListener(ln, tc)
		} else {
			protocols.SetUnencryptedHTTP2(true)
		}
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &protocols
	s.servers = append(s.servers, srv)
	s.listeners = append(s.listeners, ln)
	s.logger.Info("listening", "port", name, "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil)
	return nil
}

// apiTLS returns the API port's TLS config, or nil for h2c.
func (s *Server) apiTLS() (*tls.Config, error) {
	if s.cfg.APITLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.APITLSCert, s.cfg.APITLSKey)
	if err != nil {
		return nil, fmt.Errorf("--api-tls-cert/--api-tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// nodeTLS requires a client certificate chaining to the node CA, and not
// on the deny list.
func (s *Server) nodeTLS() (*tls.Config, error) {
	tc, err := pki.ServerTLSConfig(s.cfg.NodeTLSCert, s.cfg.NodeTLSKey, s.cfg.NodeClientCA)
	if err != nil || s.deny == nil {
		return tc, err
	}
	verify := tc.VerifyConnection
	tc.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			return err
		}
		return s.deny.VerifyConnection(cs)
	}
	return tc, nil
}

// Addr returns the bound address of a port: "api", "node" or "metrics".
func (s *Server) Addr(port string) string {
	names := []string{"api", "node", "metrics"}
	for i, n := range names {
		if n == port && i < len(s.listeners) {
			return s.listeners[i].Addr().String()
		}
	}
	return ""
}

// APIURL is the base URL applications use.
func (s *Server) APIURL() string {
	scheme := "http"
	if s.cfg.APITLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + s.Addr("api")
}

// Serve serves every port until ctx ends or a port fails, then shuts down
// gracefully: in-flight requests get ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.servers)+1)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { errc <- s.mpc.Run(runCtx) }()
	if s.deny != nil {
		go s.deny.Run(runCtx)
	}
	for i, srv := range s.servers {
		go func() {
			err := srv.Serve(s.listeners[i])
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.logger.Info("shutting down")
	s.queue.Close() // open long polls return at once
	if s.stopNodeRq != nil {
		s.stopNodeRq()
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range s.servers {
		if serr := srv.Shutdown(shutdownCtx); serr != nil {
			_ = srv.Close() // streams outlived the grace period
		}
	}
	return err
}

// Close releases what New opened, in reverse order.
func (s *Server) Close() error {
	var errs []error
	if s.stopNodeRq != nil {
		s.stopNodeRq()
	}
	for _, srv := range s.servers {
		_ = srv.Close()
	}
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	return errors.Join(errs...)
}

// notifiers tells every backend about new work.
type notifiers []api.Notifier

func (n notifiers) NotifyWork() {
	for _, x := range n {
		x.NotifyWork()
	}
}

// walletServer is the WalletService handler with its CreateWallet limit.
func (s *Server) walletServer(b api.Backends) *api.WalletServer {
	ws := api.NewWalletServer(s.store, b, notifiers{s.mpc, s.queue}, s.logger, api.WithWaiter(s.settled))
	ws.LimitMPCWallets(s.cfg.MPCWalletRate, nil)
	return ws
}

// healthChecker reports SERVING while the database answers.
type healthChecker struct{ db *db.DB }

func (h *healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	switch req.Service {
	case "", walletv1connect.WalletServiceName:
	default:
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := h.db.PingContext(ctx); err != nil {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}
