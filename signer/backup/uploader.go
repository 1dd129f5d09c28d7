package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-wallet/sigil/internal/db"
)

// Source hands the uploader the share to back up.
type Source interface {
	// BackupShare returns the id of the ceremony that made this signer's
	// active share of walletID and the share's cmp.Config encoding, which
	// the caller zeroes when done.
	BackupShare(ctx context.Context, walletID string) (keyID string, share []byte, err error)
}

// Report is the state of one share's backup, as a signer reports it.
type Report struct {
	WalletID string
	State    State
	Reason   string // failing: why (never secret)
	Location string // complete: where the backup is
}

// Reporter tells the coordinator about backup states.
type Reporter interface {
	// ReportBackup returns an error wrapping ErrReportRefused when the
	// coordinator will never take this report (an unknown wallet, say):
	// it is dropped rather than retried. Any other error is retried.
	ReportBackup(ctx context.Context, r Report) error
}

// ErrReportRefused marks a report the coordinator refused for good.
var ErrReportRefused = errors.New("the coordinator refused the backup report")

// Uploader backs up shares in the background, retrying with backoff while
// the target is down, and reports each state change. Nothing it does
// blocks signing: Enqueue writes one row and returns.
type Uploader struct {
	cfg        Config
	db         queue
	target     Target
	recipients []age.Recipient
	config     string // fingerprint of recipients and target
	signer     string
	source     Source
	reporter   Reporter
	logger     *slog.Logger
	metrics    *metrics
	wake       chan struct{}
	now        func() time.Time
}

// New returns an uploader for signer's shares, with its queue in d (whose
// schema the signer migrates). Run drives it.
func New(ctx context.Context, cfg Config, d *db.DB, signer string, src Source, rep Reporter, logger *slog.Logger, reg prometheus.Registerer) (*Uploader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	recs, fp, err := LoadRecipients(cfg.RecipientsFile)
	if err != nil {
		return nil, err
	}
	target, err := NewTarget(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Uploader{
		cfg: cfg, db: queue{d}, target: target, recipients: recs, config: fp + " " + target.Location("") + " " + cfg.S3.Endpoint,
		signer: signer, source: src, reporter: rep, logger: logger.With("component", "backup"),
		metrics: newMetrics(reg), wake: make(chan struct{}, 1), now: time.Now,
	}, nil
}

// Enqueue is the hook called whenever a share becomes active (a key
// generation, later a refresh): it records durably that the share must be
// backed up, and wakes the uploader.
func (u *Uploader) Enqueue(ctx context.Context, walletID, keyID string) error {
	if err := u.db.ensure(ctx, walletID, keyID, u.config, u.now()); err != nil {
		return fmt.Errorf("queue backup of wallet %s: %w", walletID, err)
	}
	select {
	case u.wake <- struct{}{}:
	default:
	}
	return nil
}

// Location is where the backup of walletID's share goes.
func (u *Uploader) Location(walletID string) string {
	return u.target.Location(Name(walletID, u.signer))
}

// Run uploads and reports until ctx ends.
func (u *Uploader) Run(ctx context.Context) {
	reportWait := u.cfg.RetryMin
	for ctx.Err() == nil {
		u.uploadDue(ctx)
		wait := time.Hour
		if u.reportAll(ctx) {
			reportWait = u.cfg.RetryMin
		} else {
			wait = reportWait
			reportWait = min(reportWait*2, u.cfg.RetryMax)
		}
		if next, err := u.db.nextDue(ctx); err == nil && !next.IsZero() {
			wait = min(wait, max(next.Sub(u.now()), 0))
		}
		u.updateGauges(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-u.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (u *Uploader) uploadDue(ctx context.Context) {
	rows, err := u.db.due(ctx, u.now())
	if err != nil {
		if ctx.Err() == nil {
			u.logger.ErrorContext(ctx, "list due backups", "error", err)
		}
		return
	}
	for _, r := range rows {
		if ctx.Err() != nil {
			return
		}
		u.attempt(ctx, r)
	}
}

// attempt makes one backup and records the outcome.
func (u *Uploader) attempt(ctx context.Context, r row) {
	log := u.logger.With("wallet", r.WalletID)
	location, err := u.upload(ctx, r)
	r.Attempts++
	if err != nil {
		r.State, r.LastError = StateFailing, truncate(err.Error(), 1000)
		r.NextAt = u.now().Add(u.backoff(r.Attempts)).UnixMicro()
		u.metrics.uploads.WithLabelValues("failed").Inc()
		log.WarnContext(ctx, "share backup failed; will retry", "attempts", r.Attempts, "error", r.LastError,
			"retry_in", time.Duration(r.NextAt-u.now().UnixMicro())*time.Microsecond)
	} else {
		r.State, r.LastError, r.Location = StateComplete, "", location
		u.metrics.uploads.WithLabelValues("ok").Inc()
		log.InfoContext(ctx, "share backed up", "location", location)
	}
	if err := u.db.finish(context.WithoutCancel(ctx), r, u.now()); err != nil {
		log.ErrorContext(ctx, "record backup outcome", "error", err)
	}
}

// upload encrypts the current share and stores it.
func (u *Uploader) upload(ctx context.Context, r row) (string, error) {
	keyID, share, err := u.source.BackupShare(ctx, r.WalletID)
	if err != nil {
		return "", fmt.Errorf("load share: %w", err)
	}
	defer clear(share)
	if keyID != r.KeyID {
		// A newer key replaced this one after it was queued; its own
		// Enqueue reset the row, and this attempt must not count.
		return "", fmt.Errorf("the share changed (key %s, queued %s)", keyID, r.KeyID)
	}
	file, err := Encrypt(u.recipients, r.WalletID, u.signer, keyID, share, u.now())
	if err != nil {
		return "", err
	}
	name := Name(r.WalletID, u.signer)
	tctx, cancel := context.WithTimeout(ctx, u.cfg.UploadTimeout)
	defer cancel()
	if err := u.target.Put(tctx, name, file); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return "", fmt.Errorf("%s: no answer within %s", u.target.Location(name), u.cfg.UploadTimeout)
		}
		return "", fmt.Errorf("store %s: %w", u.target.Location(name), err)
	}
	return u.target.Location(name), nil
}

// backoff doubles from RetryMin to RetryMax, with jitter.
func (u *Uploader) backoff(attempts int) time.Duration {
	d := u.cfg.RetryMin
	for i := 1; i < attempts && d < u.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, u.cfg.RetryMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// reportAll sends every unacknowledged state. It reports false when the
// coordinator could not be reached, to try again later.
func (u *Uploader) reportAll(ctx context.Context) bool {
	rows, err := u.db.unreported(ctx)
	if err != nil {
		return false
	}
	for _, r := range rows {
		rep := Report{WalletID: r.WalletID, State: r.State, Reason: r.LastError, Location: r.Location}
		err := u.reporter.ReportBackup(ctx, rep)
		if errors.Is(err, ErrReportRefused) {
			// Retrying cannot help, and must not hold up other wallets' reports.
			u.logger.WarnContext(ctx, "backup state refused by the coordinator; not reported", "wallet", r.WalletID, "error", err)
		} else if err != nil {
			if ctx.Err() == nil {
				u.logger.WarnContext(ctx, "backup state not reported to the coordinator; will retry", "wallet", r.WalletID, "error", err)
			}
			return false
		}
		if err := u.db.markReported(ctx, r); err != nil {
			return false
		}
	}
	return true
}

func (u *Uploader) updateGauges(ctx context.Context) {
	n, err := u.db.counts(ctx)
	if err != nil {
		return
	}
	for _, s := range []State{StatePending, StateComplete, StateFailing} {
		u.metrics.shares.WithLabelValues(string(s)).Set(float64(n[s]))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

type metrics struct {
	uploads *prometheus.CounterVec
	shares  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sigil_signer_backups_total",
			Help: "Share backup uploads attempted by this signer, by result (ok, failed)."}, []string{"result"}),
		shares: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sigil_signer_backup_shares",
			Help: "Shares of this signer by backup state (pending, complete, failing)."}, []string{"state"}),
	}
	reg.MustRegister(m.uploads, m.shares)
	return m
}
