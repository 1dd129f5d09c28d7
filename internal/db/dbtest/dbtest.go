// Package dbtest runs tests against every SQL dialect Sigil supports, so that each store has
// one suite that proves it on SQLite and PostgreSQL alike.
//
// SQLite always runs, on a fresh file in the test's temporary directory. PostgreSQL runs when
// SIGIL_TEST_POSTGRES holds a postgres:// URL; each test gets a schema of its own, dropped at
// the end, so tests may run in parallel against one database. Without the variable, or when the
// server is unreachable, PostgreSQL tests are skipped locally and fail under CI (CI=true), so a
// misconfigured pipeline cannot pass by testing only SQLite.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
)

// EnvPostgres names the environment variable holding the PostgreSQL URL tests use.
const EnvPostgres = "SIGIL_TEST_POSTGRES"

// setupTimeout bounds connecting, creating and dropping a test schema.
const setupTimeout = 15 * time.Second

// OpenFunc opens a new handle on one test database; each call returns a distinct *db.DB on the
// same data (to test restarts or several processes), closed when t ends.
type OpenFunc func(t testing.TB) *db.DB

// Dialects lists the dialects Each runs, in order.
func Dialects() []db.Dialect { return []db.Dialect{db.SQLite, db.Postgres} }

// Each runs fn as one sub-test per dialect, named after it, each with a fresh database.
func Each(t *testing.T, fn func(t *testing.T, open OpenFunc)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			fn(t, NewDatabase(t, d))
		})
	}
}

// Open opens a fresh, empty database of the given dialect for t.
func Open(t testing.TB, dialect db.Dialect) *db.DB {
	t.Helper()
	return NewDatabase(t, dialect)(t)
}

// NewDatabase creates a fresh, empty database of the given dialect, removed when t ends, and
// returns the function that opens handles on it.
func NewDatabase(t testing.TB, dialect db.Dialect) OpenFunc {
	t.Helper()
	switch dialect {
	case db.SQLite:
		return openerFor(db.Config{SQLitePath: filepath.Join(t.TempDir(), "test.db")})
	case db.Postgres:
		return openerFor(db.Config{URL: newPostgresSchema(t)})
	default:
		t.Fatalf("dbtest: unknown dialect %q", dialect)
		return nil
	}
}

func openerFor(cfg db.Config) OpenFunc {
	return func(t testing.TB) *db.DB {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		d, err := db.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("dbtest: %v", err)
		}
		t.Cleanup(func() {
			if err := d.Close(); err != nil {
				t.Errorf("dbtest: close database: %v", err)
			}
		})
		return d
	}
}

// newPostgresSchema creates a schema of its own for t and returns the URL that opens
// connections with it as search_path. The schema is dropped, with everything in it, after every
// handle opened on it is closed (t.Cleanup runs last-registered first).
func newPostgresSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		unavailable(t, "%s not set; set it to a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests", EnvPostgres)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("dbtest: %s is not a URL", EnvPostgres) // never print it: it may hold a password
	}

	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	admin, err := db.Open(ctx, db.Config{URL: base})
	if err != nil {
		unavailable(t, "PostgreSQL from %s unavailable: %v", EnvPostgres, err)
	}
	schema := "sigil_t_" + randomHex(t, 8)
	// The name is ours (a fixed prefix and hex), so formatting it into DDL is safe.
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("dbtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
		if err := admin.Close(); err != nil {
			t.Errorf("dbtest: close admin connection: %v", err)
		}
	})

	q := u.Query()
	q.Set("search_path", schema) // pgx sends unknown URL parameters as run-time settings
	u.RawQuery = q.Encode()
	return u.String()
}

// unavailable skips the test, or fails it under CI where a missing database is a broken pipeline.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("dbtest: "+format+" (CI=true, so this is a failure, not a skip)", args...)
	}
	t.Skipf("dbtest: "+format, args...)
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("dbtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
