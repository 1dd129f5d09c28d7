package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
)

// TestListenNotify: a notification sent on one connection reaches the
// listener on another, after the listener said it was connected.
func TestListenNotify(t *testing.T) {
	d := dbtest.Open(t, db.Postgres)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- d.Listen(ctx, "sigil_test_listen", func(p string) { got <- p }) }()
	if p := <-got; p != "" {
		t.Fatalf("first call = %q, want the empty catch-up call", p)
	}
	if err := d.Notify(ctx, "sigil_test_listen", "hello"); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("payload = %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestListenSQLite: on SQLite there is nobody else; Listen returns at once
// and Notify does nothing.
func TestListenSQLite(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	if err := d.Listen(context.Background(), "x", func(string) { t.Error("called") }); err != nil {
		t.Fatal(err)
	}
	if err := d.Notify(context.Background(), "x", "y"); err != nil {
		t.Fatal(err)
	}
}
