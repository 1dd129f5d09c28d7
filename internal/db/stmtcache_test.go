package db

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
)

// cachedCount reports how many statements the connection conn holds.
func cachedCount(t *testing.T, conn *sqlx.Conn) int {
	t.Helper()
	var n int
	if err := conn.Raw(func(dc any) error {
		n = len(dc.(*cachingConn).stmts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSQLiteStatementCache(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, Config{SQLitePath: filepath.Join(t.TempDir(), "cache.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	conn, err := d.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// A script runs whole and is not cached.
	if _, err := conn.ExecContext(ctx, `CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE INDEX kv_v ON kv (v)`); err != nil {
		t.Fatal(err)
	}
	if n := cachedCount(t, conn); n != 0 {
		t.Fatalf("a script was cached: %d statements", n)
	}

	// One statement, many arguments: compiled once, each run sees its own.
	for i := range 50 {
		if _, err := conn.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, i, fmt.Sprint("v", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		var v string
		if err := conn.GetContext(ctx, &v, `SELECT v FROM kv WHERE k = ?`, i); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("k=%d: %q %v", i, v, err)
		}
	}
	if n := cachedCount(t, conn); n != 2 {
		t.Fatalf("%d statements cached, want 2 (the insert and the select)", n)
	}

	// A failing run (a duplicate key) leaves the statement usable.
	if _, err := conn.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, 1, "dup"); err == nil {
		t.Fatal("duplicate key accepted")
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?)`, 100, "v100"); err != nil {
		t.Fatalf("the statement after a failed run: %v", err)
	}

	// The same statement again while its rows are still open: a one-off
	// copy runs, and both read correctly.
	const q = `SELECT k FROM kv WHERE k < ? ORDER BY k`
	outer, err := conn.QueryxContext(ctx, q, 5)
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	for outer.Next() {
		var k int
		if err := outer.Scan(&k); err != nil {
			t.Fatal(err)
		}
		var inner []int
		if err := conn.SelectContext(ctx, &inner, q, k); err != nil {
			t.Fatalf("nested run at k=%d: %v", k, err)
		}
		if len(inner) != k {
			t.Fatalf("nested run at k=%d read %d rows", k, len(inner))
		}
		seen++
	}
	if err := outer.Close(); err != nil || seen != 5 {
		t.Fatalf("outer rows: %d, %v", seen, err)
	}
	// Released: the cached statement serves the next run.
	var ks []int
	if err := conn.SelectContext(ctx, &ks, q, 3); err != nil || len(ks) != 3 {
		t.Fatalf("after release: %v %v", ks, err)
	}

	// A full cache makes room: every distinct text is still served, and
	// the cache stays at its bound.
	for i := range stmtCacheSize + 10 {
		var n int
		if err := conn.GetContext(ctx, &n, fmt.Sprintf(`SELECT COUNT(*) + %d FROM kv WHERE k < ?`, i), 3); err != nil || n != 3+i {
			t.Fatalf("query %d: %d %v", i, n, err)
		}
	}
	if n := cachedCount(t, conn); n != stmtCacheSize {
		t.Fatalf("%d statements cached, want the bound %d", n, stmtCacheSize)
	}

	// A schema change after compiling: SQLite recompiles the statement.
	var before []map[string]any
	rows, err := conn.QueryxContext(ctx, `SELECT * FROM kv WHERE k = ?`, 1)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		m := map[string]any{}
		if err := rows.MapScan(m); err != nil {
			t.Fatal(err)
		}
		before = append(before, m)
	}
	_ = rows.Close()
	if _, err := conn.ExecContext(ctx, `ALTER TABLE kv ADD COLUMN extra TEXT NOT NULL DEFAULT 'x'`); err != nil {
		t.Fatal(err)
	}
	rows, err = conn.QueryxContext(ctx, `SELECT * FROM kv WHERE k = ?`, 1)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := rows.Columns()
	_ = rows.Close()
	if err != nil || len(cols) != 3 || len(before) != 1 || len(before[0]) != 2 {
		t.Fatalf("columns after ALTER TABLE: %v %v (before: %v)", cols, err, before)
	}
}

// TestSQLiteWriterTurnPerFile: DBs opened on one file share one writer
// turn; DBs on different files do not.
func TestSQLiteWriterTurnPerFile(t *testing.T) {
	dir := t.TempDir()
	open := func(name string) *DB {
		d, err := Open(context.Background(), Config{SQLitePath: filepath.Join(dir, name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	a, b, other := open("one.db"), open("one.db"), open("two.db")
	if a.writers == nil || a.writers != b.writers {
		t.Fatal("two DBs on one file have separate writer turns")
	}
	if a.writers == other.writers {
		t.Fatal("DBs on different files share a writer turn")
	}
}
