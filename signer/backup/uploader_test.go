package backup_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/s3test"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// fakeSource serves fixture shares as a signer would.
type fakeSource struct {
	mu     sync.Mutex
	shares map[string]fakeShare
}

type fakeShare struct {
	keyID string
	share []byte
}

func (f *fakeSource) set(walletID, keyID string, share []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shares[walletID] = fakeShare{keyID, share}
}

func (f *fakeSource) BackupShare(_ context.Context, walletID string) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.shares[walletID]
	if !ok {
		return "", nil, fmt.Errorf("no share of %s", walletID)
	}
	return s.keyID, append([]byte(nil), s.share...), nil
}

// reports collects what the uploader tells the coordinator.
type reports chan backup.Report

// ReportBackup refuses reports for wallets named refused-*, as the
// coordinator refuses reports for wallets it does not know.
func (r reports) ReportBackup(_ context.Context, rep backup.Report) error {
	if strings.HasPrefix(rep.WalletID, "refused-") {
		return fmt.Errorf("%w: not found", backup.ErrReportRefused)
	}
	r <- rep
	return nil
}

// await reads reports until one for walletID is in state want.
func (r reports) await(t *testing.T, walletID string, want backup.State) backup.Report {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case rep := <-r:
			if rep.WalletID == walletID && rep.State == want {
				return rep
			}
		case <-timeout:
			t.Fatalf("no %s report for %s", want, walletID)
		}
	}
}

// none checks no report is queued (after the uploader went idle).
func (r reports) none(t *testing.T) {
	t.Helper()
	select {
	case rep := <-r:
		t.Fatalf("unexpected report %+v", rep)
	default:
	}
}

type uploaderEnv struct {
	cfg      backup.Config
	identity age.Identity
	source   *fakeSource
	reports  reports
	reg      *prometheus.Registry
}

func newUploaderEnv(t *testing.T) *uploaderEnv {
	t.Helper()
	kp := hybrid(t)
	dir := t.TempDir()
	recipients := filepath.Join(dir, "recipients.txt")
	if err := os.WriteFile(recipients, []byte(kp.recipient.(fmt.Stringer).String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &uploaderEnv{
		cfg:      backup.Config{RecipientsFile: recipients, Dir: filepath.Join(dir, "backups"), RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond},
		identity: kp.identity, source: &fakeSource{shares: map[string]fakeShare{}}, reports: make(reports, 100),
	}
}

func (e *uploaderEnv) open(t *testing.T, d *db.DB) *backup.Uploader {
	t.Helper()
	ctx := context.Background()
	if err := d.Migrate(ctx, signer.Migrations(), signer.MigrationTable); err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	u, err := backup.New(ctx, e.cfg, d, "signer-1", e.source, e.reports, slog.New(slog.DiscardHandler), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func run(t *testing.T, u *backup.Uploader) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); u.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestUploaderRetriesUntilTheTargetReturns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		e := newUploaderEnv(t)
		w := newFixtureWallet(t, 3, 2)
		e.source.set(w.id, w.keyID, w.shares["signer-1"])
		u := e.open(t, open(t))
		run(t, u)

		// The target breaks: its folder is replaced by a file.
		if err := os.RemoveAll(e.cfg.Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.cfg.Dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := u.Enqueue(context.Background(), w.id, w.keyID); err != nil {
			t.Fatal(err)
		}
		failing := e.reports.await(t, w.id, backup.StateFailing)
		if !strings.Contains(failing.Reason, "not a directory") || !strings.Contains(failing.Reason, e.cfg.Dir) {
			t.Fatalf("failing reason: %q", failing.Reason)
		}
		// Retried: a second failure is counted before the target returns.
		e.reports.await(t, w.id, backup.StateFailing)
		if n := uploads(t, e.reg, "failed"); n < 2 {
			t.Fatalf("failed uploads counted: %v", n)
		}

		if err := os.Remove(e.cfg.Dir); err != nil {
			t.Fatal(err)
		}
		done := e.reports.await(t, w.id, backup.StateComplete)
		want := filepath.Join(e.cfg.Dir, w.id, "signer-1.age")
		if done.Location != want || done.Reason != "" {
			t.Fatalf("complete report: %+v, want location %s", done, want)
		}
		file, err := os.ReadFile(want)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := backup.Decrypt(file, []age.Identity{e.identity}, want); err != nil {
			t.Fatal(err)
		}
		if n := uploads(t, e.reg, "ok"); n != 1 {
			t.Fatalf("ok uploads counted: %v", n)
		}
	})
}

func TestUploaderQueueSurvivesRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		e := newUploaderEnv(t)
		w := newFixtureWallet(t, 3, 2)
		e.source.set(w.id, w.keyID, w.shares["signer-1"])

		// Queued, then the signer stops before uploading anything.
		first := open(t)
		if err := e.open(t, first).Enqueue(context.Background(), w.id, w.keyID); err != nil {
			t.Fatal(err)
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(e.cfg.Dir, w.id)); !os.IsNotExist(err) {
			t.Fatalf("uploaded before Run: %v", err)
		}

		u := e.open(t, open(t))
		run(t, u)
		e.reports.await(t, w.id, backup.StateComplete)

		// The same key again (a restart's reconciliation) is not uploaded
		// again; a new key (a refresh) is.
		if err := u.Enqueue(context.Background(), w.id, w.keyID); err != nil {
			t.Fatal(err)
		}
		other := newFixtureWallet(t, 3, 2)
		e.source.set(other.id, other.keyID, other.shares["signer-1"])
		if err := u.Enqueue(context.Background(), other.id, other.keyID); err != nil {
			t.Fatal(err)
		}
		e.reports.await(t, other.id, backup.StateComplete)
		e.reports.none(t)
		e.source.set(w.id, "cer_refreshed", w.shares["signer-1"])
		if err := u.Enqueue(context.Background(), w.id, "cer_refreshed"); err != nil {
			t.Fatal(err)
		}
		e.reports.await(t, w.id, backup.StateComplete)
		if n := uploads(t, e.reg, "ok"); n != 3 {
			t.Fatalf("uploads: %v, want 3 (one per new key material)", n)
		}
	})
}

// uploads reads sigil_signer_backups_total{result}.
func uploads(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sigil_signer_backups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestUploaderDropsRefusedReports: a report the coordinator refuses for
// good is dropped, and does not hold up other wallets' reports.
func TestUploaderDropsRefusedReports(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		e := newUploaderEnv(t)
		w := newFixtureWallet(t, 3, 2)
		e.source.set("refused-wallet", w.keyID, w.shares["signer-1"])
		e.source.set(w.id, w.keyID, w.shares["signer-1"])
		u := e.open(t, open(t))
		for _, id := range []string{"refused-wallet", w.id} {
			if err := u.Enqueue(context.Background(), id, w.keyID); err != nil {
				t.Fatal(err)
			}
		}
		run(t, u)
		e.reports.await(t, w.id, backup.StateComplete)
	})
}

// TestUploaderSlowTarget: an S3 endpoint that accepts the connection but
// never answers counts as failing once the upload timeout passes, with a
// reason saying so; the uploader does not hang on it.
func TestUploaderSlowTarget(t *testing.T) {
	s3test.SetCredentials(t)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	e := newUploaderEnv(t)
	e.cfg.Dir = ""
	e.cfg.S3 = backup.S3Config{Bucket: "recovery", Endpoint: slow.URL}
	e.cfg.UploadTimeout = 200 * time.Millisecond
	w := newFixtureWallet(t, 3, 2)
	e.source.set(w.id, w.keyID, w.shares["signer-1"])
	u := e.open(t, dbtest.Open(t, db.SQLite))
	run(t, u)
	if err := u.Enqueue(context.Background(), w.id, w.keyID); err != nil {
		t.Fatal(err)
	}
	rep := e.reports.await(t, w.id, backup.StateFailing)
	if !strings.Contains(rep.Reason, "no answer within 200ms") || !strings.Contains(rep.Reason, "s3://recovery/"+w.id+"/signer-1.age") {
		t.Fatalf("reason: %q", rep.Reason)
	}
}
