package db_test

import (
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
)

// testMigrations is a tiny two-step schema per dialect; the dialects differ on purpose so the
// test proves Migrate picks the folder of the database it talks to.
func testMigrations() fstest.MapFS {
	return fstest.MapFS{
		"sqlite/00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- +goose Down
DROP TABLE items;
`)},
		"sqlite/00002_dialect.sql": {Data: []byte(`-- +goose Up
CREATE TABLE dialect (name TEXT NOT NULL);
INSERT INTO dialect (name) VALUES ('sqlite');
-- +goose Down
DROP TABLE dialect;
`)},
		"postgres/00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- +goose Down
DROP TABLE items;
`)},
		"postgres/00002_dialect.sql": {Data: []byte(`-- +goose Up
CREATE TABLE dialect (name TEXT NOT NULL);
INSERT INTO dialect (name) VALUES ('postgres');
-- +goose Down
DROP TABLE dialect;
`)},
	}
}

// otherComponent shares the database but not the version table.
func otherComponent() fstest.MapFS {
	return fstest.MapFS{
		"sqlite/00001_jobs.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE jobs (id INTEGER PRIMARY KEY);\n")},
		"postgres/00001_jobs.sql": {Data: []byte("-- +goose Up\nCREATE TABLE jobs (id BIGSERIAL PRIMARY KEY);\n")},
	}
}

func migrate(t *testing.T, d *db.DB) {
	t.Helper()
	if err := d.Migrate(t.Context(), testMigrations(), "goose_test"); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
}

func TestMigrate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		d := open(t)
		for i := range 2 { // the second run must be a no-op
			if err := d.Migrate(t.Context(), testMigrations(), "goose_test"); err != nil {
				t.Fatalf("Migrate run %d: %v", i+1, err)
			}
		}
		var dialect string
		if err := d.GetContext(t.Context(), &dialect, "SELECT name FROM dialect"); err != nil {
			t.Fatal(err)
		}
		if dialect != string(d.Dialect) {
			t.Errorf("ran the %q migrations on %q", dialect, d.Dialect)
		}
		var rows int
		if err := d.GetContext(t.Context(), &rows, "SELECT COUNT(*) FROM dialect"); err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Errorf("migration 2 applied %d times", rows)
		}

		// A second component keeps its own version table: its version 1 is not ours.
		if err := d.Migrate(t.Context(), otherComponent(), "goose_other"); err != nil {
			t.Fatalf("Migrate other component: %v", err)
		}
		var maxVersion int64
		if err := d.GetContext(t.Context(), &maxVersion, "SELECT MAX(version_id) FROM goose_test"); err != nil {
			t.Fatal(err)
		}
		if maxVersion != 2 {
			t.Errorf("goose_test at version %d, want 2", maxVersion)
		}
		if err := d.GetContext(t.Context(), &maxVersion, "SELECT MAX(version_id) FROM goose_other"); err != nil {
			t.Fatal(err)
		}
		if maxVersion != 1 {
			t.Errorf("goose_other at version %d, want 1", maxVersion)
		}

		// A fresh handle on the same database (a restart) finds nothing to do.
		if err := open(t).Migrate(t.Context(), testMigrations(), "goose_test"); err != nil {
			t.Fatalf("Migrate after reopen: %v", err)
		}
	})
}

func TestMigrateErrors(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	tests := []struct {
		name  string
		fs    fstest.MapFS
		table string
		want  string
	}{
		{"no folder for dialect", fstest.MapFS{"postgres/00001_x.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")}}, "goose_x", "no migrations"},
		{"table with quote", testMigrations(), "goose'; DROP", "invalid migration table"},
		{"empty table", testMigrations(), "", "invalid migration table"},
		{"uppercase table", testMigrations(), "Goose", "invalid migration table"},
		{"broken SQL", fstest.MapFS{"sqlite/00001_x.sql": {Data: []byte("-- +goose Up\nCREATE TABLEX;\n")}}, "goose_broken", "migrate goose_broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Migrate(t.Context(), tt.fs, tt.table)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestMigrateConcurrentPostgres starts several replicas at once: the advisory lock must make
// them migrate one after the other, so none trips over a half-created version table.
func TestMigrateConcurrentPostgres(t *testing.T) {
	open := dbtest.NewDatabase(t, db.Postgres)
	const replicas = 4
	handles := make([]*db.DB, replicas)
	for i := range handles {
		handles[i] = open(t)
	}
	errs := make(chan error, replicas)
	var wg sync.WaitGroup
	for _, h := range handles {
		wg.Go(func() { errs <- h.Migrate(t.Context(), testMigrations(), "goose_test") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var rows int
	if err := handles[0].GetContext(t.Context(), &rows, "SELECT COUNT(*) FROM dialect"); err != nil {
		t.Fatal(err)
	}
	if rows != 1 {
		t.Errorf("migration 2 applied %d times", rows)
	}
}
