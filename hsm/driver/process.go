package driver

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/failover"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/journal"
	"github.com/sigil-wallet/sigil/internal/observe"
	"github.com/sigil-wallet/sigil/internal/pki"
)

// Config is everything `sigil hsm-driver` needs.
type Config struct {
	// NodeURL is the coordinator's node port: https://host:port, or
	// host:port; several replicas' ports separated by commas, tried in
	// order, the next one when one is unreachable.
	NodeURL string
	// TLSCert and TLSKey are the driver's certificate (role driver) and key;
	// NodeCA the CA the coordinator's certificate chains to.
	TLSCert, TLSKey, NodeCA string
	// ServerName is checked against the coordinator's certificate; default
	// the host of each NodeURL.
	ServerName string
	// HSM selects the module, token, PIN, master key label and session pool.
	HSM hsm.Config
	// DatabaseURL is the PostgreSQL driver database shared by all drivers;
	// empty uses SQLite in DataDir (a single driver).
	DatabaseURL string
	DataDir     string
	// Concurrency is how many jobs run at once (default HSM.Sessions).
	Concurrency int
	// ClaimWait is the long-poll wait of each ClaimJob (default 30 s).
	ClaimWait time.Duration
	// MetricsAddr serves Prometheus metrics at /metrics; empty disables.
	MetricsAddr string
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
	// AfterComplete is called after each accepted result (tests).
	AfterComplete func(job *driverv1.Job)
	// Policy is the driver's signing policy: trusted request keys and the
	// validation gate. Its journal lives in the driver database.
	Policy guard.Settings
}

// Validate names the flag at fault.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeURL == "" {
		errs = append(errs, errors.New("--node-url is required: the coordinator's node port, e.g. https://coordinator:8443"))
	}
	if c.TLSCert == "" || c.TLSKey == "" || c.NodeCA == "" {
		errs = append(errs, errors.New("--tls-cert, --tls-key and --node-ca are required (a driver certificate from `sigil pki issue --role driver`)"))
	}
	if c.HSM.ModulePath == "" {
		errs = append(errs, errors.New("--pkcs11-module is required: the PKCS#11 library of the HSM, e.g. /usr/lib/softhsm/libsofthsm2.so"))
	}
	if c.HSM.TokenLabel == "" {
		errs = append(errs, errors.New("--token-label is required"))
	}
	if c.HSM.PIN == "" {
		errs = append(errs, errors.New("no PIN: give --pin-file or set SIGIL_HSM_PIN"))
	}
	if c.DatabaseURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--database-url (shared by all drivers) or --data-dir (a single driver) is required"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("--database-url: only postgres:// URLs are supported; leave it empty for SQLite in --data-dir"))
	}
	if c.HSM.Sessions < 0 || c.Concurrency < 0 {
		errs = append(errs, errors.New("--sessions and --concurrency must be positive"))
	}
	return errors.Join(errs...)
}

// Process is a running driver with what it opened.
type Process struct {
	Driver      *Driver
	HSM         *hsm.HSM
	Keys        *KeyStore
	Registry    *prometheus.Registry
	Fingerprint string
	// AttestationKey is the token's attestation public key, which the
	// coordinator must pin (--hsm-attestation-key).
	AttestationKey *ecdsa.PublicKey
	Journal        *journal.Journal

	logger  *slog.Logger
	metrics net.Listener
	closers []func() error
}

// Open builds a driver from cfg: the HSM (checked: module, token, PIN and
// master key), the driver database, the mTLS client and the metrics. It
// fails with a message saying what is wrong and what to do.
func Open(ctx context.Context, cfg Config) (p *Process, err error) {
	if cfg.HSM.Sessions == 0 {
		cfg.HSM.Sessions = hsm.DefaultSessions
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = cfg.HSM.Sessions
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p = &Process{Registry: observe.NewRegistry(), logger: cfg.Logger}
	defer func() {
		if err != nil {
			_ = p.Close()
			p = nil
		}
	}()
	metrics := NewMetrics(p.Registry)
	cfg.HSM.ObserveCall = metrics.ObserveCall

	if p.HSM, err = openHSM(ctx, cfg.HSM); err != nil {
		return p, err
	}
	p.closers = append(p.closers, p.HSM.Close)
	if p.Fingerprint, err = p.HSM.MasterKeyFingerprint(ctx); err != nil {
		return p, fmt.Errorf("read the master key fingerprint: %w", err)
	}
	if p.AttestationKey, err = p.HSM.AttestationKey(ctx); err != nil {
		if errors.Is(err, hsm.ErrNoAttestationKey) {
			return p, fmt.Errorf("no attestation key on token %q: %w; then pin its public key (`sigil hsm attestation-key`) "+
				"on the coordinator with --hsm-attestation-key", cfg.HSM.TokenLabel, err)
		}
		return p, fmt.Errorf("read the attestation key of token %q: %w", cfg.HSM.TokenLabel, err)
	}

	// Durable: the journal's decision must be on disk before a signature
	// leaves the driver.
	d, err := db.Open(ctx, db.Config{URL: cfg.DatabaseURL, SQLitePath: filepath.Join(cfg.DataDir, "hsm-driver.db"), Durable: true, Logger: cfg.Logger})
	if err != nil {
		return p, fmt.Errorf("open the driver database: %w", err)
	}
	p.closers = append(p.closers, d.Close)
	if p.Keys, err = OpenKeyStore(ctx, d); err != nil {
		return p, err
	}

	client, name, err := nodeClient(cfg)
	if err != nil {
		return p, err
	}
	g, j, err := guard.Open(ctx, cfg.Policy, name, d, cfg.Logger)
	if err != nil {
		return p, err
	}
	p.Journal = j
	p.Driver = New(Options{
		Client: client, HSM: p.HSM, Keys: p.Keys, Fingerprint: p.Fingerprint, Concurrency: cfg.Concurrency,
		ClaimWait: cfg.ClaimWait, Logger: cfg.Logger, Metrics: metrics, AfterComplete: cfg.AfterComplete, Guard: g,
	})
	if cfg.MetricsAddr != "" {
		if p.metrics, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return p, fmt.Errorf("--metrics-addr %s: %w", cfg.MetricsAddr, err)
		}
		p.closers = append(p.closers, func() error { _ = p.metrics.Close(); return nil })
	}
	cfg.Logger.Info("HSM driver ready", "node", cfg.NodeURL, "token", cfg.HSM.TokenLabel,
		"master_key", p.Fingerprint, "attestation_key", fmt.Sprintf("%x", attest.KeyID(p.AttestationKey)[:8]), "sessions", cfg.HSM.Sessions, "concurrency", cfg.Concurrency,
		"database", string(d.Dialect))
	return p, nil
}

// openHSM opens the token and turns the startup failures an operator can
// fix into a message saying which one it is.
func openHSM(ctx context.Context, cfg hsm.Config) (*hsm.HSM, error) {
	h, err := hsm.Open(ctx, cfg)
	switch {
	case err == nil:
		return h, nil
	case errors.Is(err, hsm.ErrModule):
		return nil, fmt.Errorf("PKCS#11 module (--pkcs11-module %s) unusable: %w", cfg.ModulePath, err)
	case errors.Is(err, hsm.ErrTokenNotFound):
		return nil, fmt.Errorf("token not found (--token-label %q): %w; check the label, or initialise the token with the HSM's tools", cfg.TokenLabel, err)
	case errors.Is(err, hsm.ErrPIN):
		return nil, fmt.Errorf("wrong PIN for token %q (from --pin-file or SIGIL_HSM_PIN): %w", cfg.TokenLabel, err)
	case errors.Is(err, hsm.ErrNoMasterKey):
		return nil, fmt.Errorf("no master key on token %q: %w; every HSM of a deployment needs the same one (import-master-key on the others)", cfg.TokenLabel, err)
	default:
		return nil, fmt.Errorf("open HSM token %q: %w", cfg.TokenLabel, err)
	}
}

// nodeClient returns the node-port client and the driver's name (its
// certificate's common name).
func nodeClient(cfg Config) (driverv1connect.DriverServiceClient, string, error) {
	endpoints, err := failover.ParseURLs(cfg.NodeURL, "--node-url")
	if err != nil {
		return nil, "", err
	}
	// An empty server name lets TLS check each replica's own host name.
	tc, err := pki.ClientTLSConfig(cfg.TLSCert, cfg.TLSKey, cfg.NodeCA, cfg.ServerName)
	if err != nil {
		return nil, "", fmt.Errorf("driver TLS (--tls-cert, --tls-key, --node-ca): %w", err)
	}
	leaf, err := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	if err != nil {
		return nil, "", fmt.Errorf("--tls-cert: %w", err)
	}
	ft := failover.New(failover.NewHTTPTransport(&http.Transport{TLSClientConfig: tc}), endpoints, cfg.Logger)
	return driverv1connect.NewDriverServiceClient(&http.Client{Transport: ft}, ft.BaseURL()), leaf.Subject.CommonName, nil
}

// MetricsAddr is the bound metrics address, or "".
func (p *Process) MetricsAddr() string {
	if p.metrics == nil {
		return ""
	}
	return p.metrics.Addr().String()
}

// Run serves metrics and runs the driver until ctx ends.
func (p *Process) Run(ctx context.Context) error {
	if p.metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", observe.MetricsHandler(p.Registry))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(p.metrics) }()
		defer srv.Close()
	}
	return p.Driver.Run(ctx)
}

// Close releases what Open opened, in reverse order.
func (p *Process) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}
