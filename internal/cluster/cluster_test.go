package cluster_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/server"
)

// records keeps every log record at Warn or above.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := rec.Message
	rec.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	r.msgs = append(r.msgs, msg)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// TestCloseStopsNodesFirst: Close stops the HSM driver and the signers
// before the coordinator, so none of them logs a failed call to a node port
// that is gone (the burst of connection-refused warnings `sigil dev` used to
// print at Ctrl-C).
func TestCloseStopsNodesFirst(t *testing.T) {
	if !cluster.SoftHSMAvailable() {
		t.Skip("SoftHSM2 is not installed")
	}
	dir := t.TempDir()
	log := &records{}
	c, err := cluster.Start(context.Background(), cluster.Options{
		Dir: dir, Signers: 2, Threshold: 2, Logger: slog.New(log),
		Server: server.Config{APIAddr: "127.0.0.1:0", NodeAddr: "127.0.0.1:0"},
		HSM:    &cluster.HSMOptions{ModulePath: cluster.SoftHSMModule},
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for c.Server.OnlineSigners() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("signers did not connect")
		}
		time.Sleep(20 * time.Millisecond) // polling a state, not waiting for luck
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := log.all(); len(got) > 0 {
		t.Fatalf("warnings while closing:\n%v", got)
	}
}
