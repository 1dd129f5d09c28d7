package db_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
)

func closeDB(t *testing.T, d *db.DB) {
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func TestOpenSQLite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "sigil.db")
	d, err := db.Open(t.Context(), db.Config{SQLitePath: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closeDB(t, d)
	if d.Dialect != db.SQLite {
		t.Errorf("dialect = %q", d.Dialect)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", p, got, want)
		}
	}

	// Every pooled connection must carry the pragmas, not just the first one.
	d.SetMaxOpenConns(2)
	for _, tt := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"busy_timeout", "10000"},
		{"foreign_keys", "1"},
		{"synchronous", "1"},
	} {
		var got string
		if err := d.GetContext(t.Context(), &got, "PRAGMA "+tt.pragma); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
	if got := d.Rebind("SELECT ? , ?"); got != "SELECT ? , ?" {
		t.Errorf("Rebind = %q", got)
	}
}

func TestOpenSQLiteSpecialPath(t *testing.T) {
	// '?' and '#' would end the file name in SQLite's URI syntax if left unescaped.
	path := filepath.Join(t.TempDir(), "odd ?#% name", "x.db")
	d, err := db.Open(t.Context(), db.Config{SQLitePath: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closeDB(t, d)
	if _, err := d.ExecContext(t.Context(), "CREATE TABLE t (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %s: %v", path, err)
	}
}

func TestOpenErrors(t *testing.T) {
	const secret = "hunter2"
	tests := []struct {
		name        string
		cfg         db.Config
		wantContain string
	}{
		{"nothing configured", db.Config{}, "no database configured"},
		{"unsupported scheme", db.Config{URL: "mysql://sigil:" + secret + "@db.example/sigil"}, "unsupported"},
		{"unreachable postgres", db.Config{URL: "postgres://sigil:" + secret + "@127.0.0.1:1/sigil?sslmode=disable"}, "127.0.0.1:1/sigil"},
		{"malformed postgres", db.Config{URL: "postgres://sigil:" + secret + "@127.0.0.1:5432/sigil?sslmode=bogus"}, "invalid PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			d, err := db.Open(ctx, tt.cfg)
			if err == nil {
				closeDB(t, d)
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantContain) {
				t.Errorf("error %q does not mention %q", err, tt.wantContain)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestReopenSeesData(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		first := open(t)
		if _, err := first.ExecContext(t.Context(), "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"); err != nil {
			t.Fatal(err)
		}
		if _, err := first.ExecContext(t.Context(), first.Rebind("INSERT INTO kv (k, v) VALUES (?, ?)"), "a", "b"); err != nil {
			t.Fatal(err)
		}
		second := open(t)
		var v string
		if err := second.GetContext(t.Context(), &v, second.Rebind("SELECT v FROM kv WHERE k = ?"), "a"); err != nil {
			t.Fatal(err)
		}
		if v != "b" {
			t.Errorf("v = %q", v)
		}
	})
}

// TestOpenSQLiteDurable checks a durable store fsyncs every commit.
func TestOpenSQLiteDurable(t *testing.T) {
	d, err := db.Open(t.Context(), db.Config{SQLitePath: filepath.Join(t.TempDir(), "d.db"), Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	closeDB(t, d)
	var got string
	if err := d.GetContext(t.Context(), &got, "PRAGMA synchronous"); err != nil {
		t.Fatal(err)
	}
	if got != "2" { // FULL
		t.Fatalf("PRAGMA synchronous = %s, want 2 (FULL)", got)
	}
}
