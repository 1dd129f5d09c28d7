// Package signer is an MPC signer node, `sigil signer`: it holds its key
// shares, encrypted at rest under its own KEK, dials the coordinator's node
// port over mTLS (outbound only), and runs the CMP key generation and
// signing ceremonies the coordinator hands it, exchanging end-to-end sealed
// messages with its peers through the coordinator's blind relay.
package signer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	"github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1/deliveryv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/journal"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/internal/seal"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/kek"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// Config is what a signer needs.
type Config struct {
	// CoordinatorURL is the node port, e.g. https://coordinator:8443;
	// several replicas' ports separated by commas, tried in order.
	CoordinatorURL string
	// CertFile and KeyFile are the signer's certificate (role signer); its
	// common name is the signer's name.
	CertFile, KeyFile string
	// CAFile verifies the coordinator's certificate.
	CAFile string
	// PeerCAFile is the signer CA that peers' announcements must chain to
	// (default CAFile).
	PeerCAFile string
	// KEKFile holds the 32-byte key encrypting shares at rest.
	KEKFile string
	// SQLitePath or DatabaseURL select the share database.
	SQLitePath, DatabaseURL string
	// ServerName overrides the name checked in the coordinator's
	// certificate (default: the URL's host).
	ServerName string
	// Policy is the signer's signing policy: trusted request keys,
	// validation gate.
	Policy guard.Settings
	// Backup, when enabled, backs every active share up, encrypted to the
	// operator's recovery recipients.
	Backup     backup.Config
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Signer is a running signer node.
type Signer struct {
	name      string
	cfg       Config
	logger    *slog.Logger
	identity  *seal.Identity
	peerRoots *x509.CertPool
	kek       *kek.KEK
	db        *db.DB
	shares    *shareStore
	ceremony  ceremonyv1connect.CeremonyServiceClient
	delivery  deliveryv1connect.DeliveryServiceClient
	runner    *mpc.Runner
	protocols protocols
	configs   *configCache
	metrics   *metrics
	guard     *guard.Guard
	journal   *journal.Journal
	backups   *backup.Uploader // nil: backups off
	// afterPresigUsed, set only by tests, runs between marking a
	// presignature used and the online round.
	afterPresigUsed func(ctx context.Context) error

	mu      sync.Mutex
	running map[string]*run
	// finished remembers ceremonies this process ran to the end, so one
	// delivered again after a reconnect is not run a second time.
	finished map[string]time.Time
	wg       sync.WaitGroup
}

// run is one ceremony in progress at this signer.
type run struct {
	c      *ceremonyv1.Ceremony
	cancel context.CancelFunc
}

// New loads the signer's keys and database. It fails with a message naming
// the file at fault.
func New(ctx context.Context, cfg Config) (*Signer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.PeerCAFile == "" {
		cfg.PeerCAFile = cfg.CAFile
	}
	if cfg.CoordinatorURL == "" {
		return nil, errors.New("--coordinator is required: the coordinator's node port, e.g. https://127.0.0.1:8443")
	}
	cert, err := pki.LoadKeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--cert/--key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	id, err := pki.IdentityFromCert(leaf)
	if err != nil || id.Role != pki.RoleSigner {
		return nil, fmt.Errorf("--cert: not a signer certificate (role %q): issue one with `sigil pki issue --role signer`", id.Role)
	}
	identity, err := seal.NewIdentity(cert)
	if err != nil {
		return nil, fmt.Errorf("sealing identity: %w", err)
	}
	peerRoots, err := pki.LoadCertPool(cfg.PeerCAFile)
	if err != nil {
		return nil, fmt.Errorf("--peer-ca: %w", err)
	}
	k, err := kek.Load(cfg.KEKFile)
	if err != nil {
		return nil, fmt.Errorf("--kek-file: %w (create one with `sigil signer init`)", err)
	}
	tc, err := pki.ClientTLSConfig(cfg.CertFile, cfg.KeyFile, cfg.CAFile, cfg.ServerName)
	if err != nil {
		k.Destroy()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	d, err := db.Open(ctx, db.Config{URL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath, Durable: true, Logger: cfg.Logger})
	if err != nil {
		k.Destroy()
		return nil, fmt.Errorf("signer database: %w", err)
	}
	shares, err := openShares(ctx, d)
	if err != nil {
		k.Destroy()
		_ = d.Close()
		return nil, err
	}
	logger := cfg.Logger.With("signer", id.Name)
	hc, baseURL, err := coordinatorClient(cfg.CoordinatorURL, tc, logger)
	if err != nil {
		k.Destroy()
		_ = d.Close()
		return nil, err
	}
	g, j, err := guard.Open(ctx, cfg.Policy, id.Name, d, logger)
	if err != nil {
		k.Destroy()
		_ = d.Close()
		return nil, err
	}
	s := &Signer{
		name: id.Name, cfg: cfg, logger: logger, identity: identity, peerRoots: peerRoots, kek: k, db: d, shares: shares, guard: g, journal: j,
		ceremony:  ceremonyv1connect.NewCeremonyServiceClient(hc, baseURL),
		delivery:  deliveryv1connect.NewDeliveryServiceClient(hc, baseURL),
		runner:    &mpc.Runner{Logger: logger},
		protocols: defaultProtocols(),
		configs:   newConfigCache(),
		metrics:   newMetrics(cfg.Registerer),
		running:   map[string]*run{},
		finished:  map[string]time.Time{},
	}
	if err := s.openBackups(ctx); err != nil {
		k.Destroy()
		_ = d.Close()
		return nil, err
	}
	return s, nil
}

// Journal is the signer's decision journal.
func (s *Signer) Journal() *journal.Journal { return s.journal }

// Name is the signer's name (its certificate's common name).
func (s *Signer) Name() string { return s.name }

// Close waits for running ceremonies to stop and releases the database and
// the KEK. Cancel Run's context first.
func (s *Signer) Close() error {
	s.wg.Wait()
	s.kek.Destroy()
	return s.db.Close()
}

// Run keeps a ceremony stream open to the coordinator, reconnecting with
// backoff, and runs the ceremonies it delivers, until ctx ends.
func (s *Signer) Run(ctx context.Context) error {
	if s.backups != nil {
		s.wg.Go(func() { s.runBackups(ctx) })
	}
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		connected, err := s.watch(ctx)
		if ctx.Err() != nil {
			break // shutting down: the stream's error is expected
		}
		if connected {
			backoff = 250 * time.Millisecond
		}
		s.logger.WarnContext(ctx, "ceremony stream closed; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff + time.Duration(rand.Int64N(int64(backoff/2)+1))):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	s.cancelAll()
	return nil //nolint:nilerr // the loop ends only when ctx does: a normal stop
}

// watch runs one ceremony stream until it breaks. connected reports whether
// the coordinator accepted the stream.
func (s *Signer) watch(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.ceremony.WatchCeremonies(ctx, connect.NewRequest(&ceremonyv1.WatchCeremoniesRequest{Announcement: s.identity.Announcement()}))
	if err != nil {
		return false, err
	}
	defer stream.Close()
	// Peers refuse an announcement past its lifetime, so the stream is
	// opened again with a freshly signed one well before that (the sealing
	// key stays the same, so ceremonies in flight are not disturbed).
	refresh := time.AfterFunc(seal.AnnouncementTTL/4, cancel)
	defer refresh.Stop()
	// A stream that stays silent past a few heartbeats is dead even if TCP
	// has not noticed.
	alive := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-alive:
				t.Reset(time.Minute)
			case <-t.C:
				s.logger.WarnContext(ctx, "no heartbeat from the coordinator; reconnecting")
				cancel()
				return
			}
		}
	}()
	first := true
	for stream.Receive() {
		if first {
			first = false
			s.logger.InfoContext(ctx, "connected to the coordinator", "url", s.cfg.CoordinatorURL)
			s.metrics.connected.Set(1)
			go s.resolvePending(ctx)
		}
		select {
		case alive <- struct{}{}:
		default:
		}
		switch ev := stream.Msg().GetEvent().(type) {
		case *ceremonyv1.WatchCeremoniesResponse_Ceremony:
			s.start(ctx, ev.Ceremony)
		case *ceremonyv1.WatchCeremoniesResponse_Ended:
			s.ended(ctx, ev.Ended.GetCeremonyId(), ev.Ended.GetState())
		}
	}
	s.metrics.connected.Set(0)
	return !first, stream.Err()
}

// start runs a ceremony unless it already runs here.
func (s *Signer) start(ctx context.Context, c *ceremonyv1.Ceremony) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.running[c.GetId()]; ok {
		return
	}
	if _, ok := s.finished[c.GetId()]; ok {
		return
	}
	// A ceremony outlives the stream that delivered it: a reconnect must not
	// kill a protocol in progress.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if d := c.GetDeadline(); d != nil {
		rctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.AsTime())
	}
	s.running[c.GetId()] = &run{c: c, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		s.runCeremony(rctx, c)
		s.mu.Lock()
		delete(s.running, c.GetId())
		now := time.Now()
		s.finished[c.GetId()] = now
		for id, at := range s.finished {
			if now.Sub(at) > time.Hour { // ceremonies end long before this
				delete(s.finished, id)
			}
		}
		s.mu.Unlock()
	}()
}

// ended stops a ceremony the coordinator ended and settles the share of a
// key generation.
func (s *Signer) ended(ctx context.Context, id string, state ceremonyv1.CeremonyState) {
	s.mu.Lock()
	r, ok := s.running[id]
	s.mu.Unlock()
	if ok && state != ceremonyv1.CeremonyState_CEREMONY_STATE_SUCCEEDED {
		r.cancel()
	}
	// The ceremony may have finished here already (this signer reported
	// before the others): settle any share or presignature it left. For
	// other ceremonies this matches nothing.
	s.settleKeygen(ctx, id, state)
	if state == ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED {
		s.dropPresig(ctx, id)
	}
}

// settleKeygen activates or discards the share a key generation left
// pending, once its outcome is known.
func (s *Signer) settleKeygen(ctx context.Context, ceremonyID string, state ceremonyv1.CeremonyState) {
	sh, err := s.shares.byCeremony(ctx, ceremonyID)
	if err != nil {
		if !errors.Is(err, ErrNoShare) {
			s.logger.ErrorContext(ctx, "settle share", "ceremony", ceremonyID, "error", err)
		}
		return
	}
	s.settleShare(ctx, sh, state)
}

func (s *Signer) settleShare(ctx context.Context, sh *share, state ceremonyv1.CeremonyState) {
	switch state {
	case ceremonyv1.CeremonyState_CEREMONY_STATE_SUCCEEDED:
		activated, err := s.shares.activate(ctx, sh)
		if err != nil {
			s.logger.ErrorContext(ctx, "activate share", "wallet", sh.WalletID, "error", err)
			return
		}
		if activated {
			s.onKeyActive(ctx, sh)
		}
	case ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED:
		if err := s.shares.discard(ctx, sh); err != nil {
			s.logger.ErrorContext(ctx, "discard share", "wallet", sh.WalletID, "error", err)
		}
	}
}

// resolvePending asks the coordinator how key generations whose shares are
// still pending ended (the signer may have missed the news while away).
func (s *Signer) resolvePending(ctx context.Context) {
	pending, err := s.shares.pending(ctx)
	if err != nil {
		s.logger.ErrorContext(ctx, "list pending shares", "error", err)
		return
	}
	for _, sh := range pending {
		s.resolveShare(ctx, sh)
	}
}

// resolveShare settles a pending share by asking the coordinator how its
// key generation ended.
func (s *Signer) resolveShare(ctx context.Context, sh *share) {
	res, err := s.ceremony.GetCeremony(ctx, connect.NewRequest(&ceremonyv1.GetCeremonyRequest{CeremonyId: sh.KeygenCeremonyID}))
	switch {
	case connect.CodeOf(err) == connect.CodeNotFound:
		s.settleShare(ctx, sh, ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED)
	case err != nil:
		s.logger.WarnContext(ctx, "check pending share", "wallet", sh.WalletID, "error", err)
	default:
		s.settleShare(ctx, sh, res.Msg.GetCeremony().GetState())
	}
}

// putPending stores a key generation's share, pending. When an earlier
// attempt at the same wallet's key left a share pending (its coordinator
// replica died and another started the key generation again, before this
// signer heard that the first one ended), that share is settled first, by
// asking how its key generation ended: a failed one's share is discarded
// and this one stored. An active share, or one whose key generation may
// still succeed, is never replaced.
func (s *Signer) putPending(ctx context.Context, sh *share) error {
	err := s.shares.putPending(ctx, sh)
	if !errors.Is(err, errShareExists) {
		return err
	}
	old, gerr := s.shares.ofEpoch(ctx, sh.WalletID, sh.KeyEpoch)
	if gerr != nil || old.State != sharePending || old.KeygenCeremonyID == sh.KeygenCeremonyID {
		return err
	}
	s.resolveShare(ctx, old)
	return s.shares.putPending(ctx, sh)
}

func (s *Signer) cancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		r.cancel()
	}
}

type metrics struct {
	connected  prometheus.Gauge
	ceremonies *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	dropped    prometheus.Counter
	sends      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "sigil_signer_connected", Help: "1 while the ceremony stream to the coordinator is open."}),
		ceremonies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sigil_signer_ceremonies_total", Help: "Ceremonies run by this signer, by kind and result."}, []string{"kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sigil_signer_ceremony_seconds", Help: "Protocol run time at this signer.",
			Buckets: []float64{.5, 1, 2, 4, 8, 15, 30, 60, 120}}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_signer_dropped_messages_total", Help: "Relayed messages dropped because they failed to verify, decrypt or decode."}),
	}
	m.sends = prometheus.NewCounter(prometheus.CounterOpts{Name: "sigil_signer_relay_sends_total", Help: "Send calls to the relay (each carries every message one protocol round emitted)."})
	reg.MustRegister(m.connected, m.ceremonies, m.duration, m.dropped, m.sends)
	return m
}
