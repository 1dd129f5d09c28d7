package db_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
)

func countItems(t *testing.T, d *db.DB) int {
	t.Helper()
	var n int
	if err := d.GetContext(t.Context(), &n, "SELECT COUNT(*) FROM items"); err != nil {
		t.Fatal(err)
	}
	return n
}

func insertItem(t *testing.T, tx *sqlx.Tx, name string) error {
	t.Helper()
	_, err := tx.ExecContext(t.Context(), tx.Rebind("INSERT INTO items (name) VALUES (?)"), name)
	return err
}

func TestInTx(t *testing.T) {
	errDomain := errors.New("domain failure")
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		d := open(t)
		migrate(t, d)

		if err := d.InTx(t.Context(), func(tx *sqlx.Tx) error { return insertItem(t, tx, "kept") }); err != nil {
			t.Fatalf("InTx commit: %v", err)
		}

		err := d.InTx(t.Context(), func(tx *sqlx.Tx) error {
			if err := insertItem(t, tx, "rolled-back"); err != nil {
				return err
			}
			return fmt.Errorf("wrapped: %w", errDomain)
		})
		if !errors.Is(err, errDomain) {
			t.Fatalf("InTx error = %v, want the callback's error", err)
		}

		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Errorf("recovered %v, want the callback's panic", p)
				}
			}()
			_ = d.InTx(t.Context(), func(tx *sqlx.Tx) error {
				if err := insertItem(t, tx, "panicked"); err != nil {
					return err
				}
				panic("boom")
			})
		}()

		if n := countItems(t, d); n != 1 {
			t.Errorf("%d items after commit, rollback and panic; want 1", n)
		}
		// The pool must still work: a leaked transaction would hold SQLite's write lock.
		if err := d.InTx(t.Context(), func(tx *sqlx.Tx) error { return insertItem(t, tx, "after") }); err != nil {
			t.Fatalf("InTx after panic: %v", err)
		}
	})
}

func TestIsUniqueViolation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		d := open(t)
		migrate(t, d)
		ctx := t.Context()
		insert := d.Rebind("INSERT INTO items (id, name) VALUES (?, ?)")
		if _, err := d.ExecContext(ctx, insert, 1, "a"); err != nil {
			t.Fatal(err)
		}
		_, dupName := d.ExecContext(ctx, insert, 2, "a")
		_, dupKey := d.ExecContext(ctx, insert, 1, "b")
		_, notNull := d.ExecContext(ctx, d.Rebind("INSERT INTO items (id, name) VALUES (?, NULL)"), 3)
		_, syntax := d.ExecContext(ctx, "INSERT INTO nowhere VALUES (1)")

		tests := []struct {
			name string
			err  error
			want bool
		}{
			{"unique column", dupName, true},
			{"primary key", dupKey, true},
			{"wrapped", fmt.Errorf("store: %w", dupName), true},
			{"not null", notNull, false},
			{"missing table", syntax, false},
			{"plain error", errors.New("x"), false},
			{"nil", nil, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := db.IsUniqueViolation(tt.err); got != tt.want {
					t.Errorf("IsUniqueViolation(%v) = %v, want %v", tt.err, got, tt.want)
				}
			})
		}
	})
}

// TestConcurrentWritersSQLite proves writers queue instead of failing with SQLITE_BUSY. Each
// transaction reads before it writes, the pattern that deadlocks deferred transactions.
func TestConcurrentWritersSQLite(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	migrate(t, d)
	const writers, perWriter = 10, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				err := d.InTx(t.Context(), func(tx *sqlx.Tx) error {
					var n int
					if err := tx.GetContext(t.Context(), &n, "SELECT COUNT(*) FROM items"); err != nil {
						return err
					}
					_, err := tx.ExecContext(t.Context(), "INSERT INTO items (name) VALUES (?)", fmt.Sprintf("w%d-%d", w, i))
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d insert %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := countItems(t, d); n != writers*perWriter {
		t.Errorf("%d rows, want %d", n, writers*perWriter)
	}
}

// TestSQLiteWritersTakeTurns: on SQLite this process's write transactions
// run one at a time, each starting when the one before ends (no busy
// wait), and a writer waiting its turn gives up with its context.
func TestSQLiteWritersTakeTurns(t *testing.T) {
	d := dbtest.Open(t, db.SQLite)
	migrate(t, d)
	inFirst, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- d.InTx(t.Context(), func(tx *sqlx.Tx) error {
			close(inFirst)
			<-release
			return insertItem(t, tx, "first")
		})
	}()
	<-inFirst
	// A writer whose context ends while it waits gives up with the cause.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := d.InTx(ctx, func(tx *sqlx.Tx) error { return insertItem(t, tx, "never") })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting writer: %v, want its deadline", err)
	}
	// A patient one starts once the first commits, and sees its row.
	second := make(chan int, 1)
	go func() {
		_ = d.InTx(t.Context(), func(tx *sqlx.Tx) error {
			var n int
			if err := tx.GetContext(t.Context(), &n, "SELECT COUNT(*) FROM items WHERE name = 'first'"); err != nil {
				return err
			}
			second <- n
			return insertItem(t, tx, "second")
		})
	}()
	select {
	case n := <-second:
		t.Fatalf("the second writer ran inside the first (saw %d rows)", n)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if n := <-second; n != 1 {
		t.Fatalf("the second writer saw %d rows of the first", n)
	}
}

// TestSQLiteWriterTurnsSharedPerFile: two DBs opened on one file in one
// process share the turn, so one's writer waits for the other's commit in
// Go rather than in SQLite's busy wait.
func TestSQLiteWriterTurnsSharedPerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	open := func() *db.DB {
		d, err := db.Open(t.Context(), db.Config{SQLitePath: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	a, b := open(), open()
	migrate(t, a)
	inA, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.InTx(t.Context(), func(tx *sqlx.Tx) error {
			close(inA)
			<-release
			return insertItem(t, tx, "from a")
		})
	}()
	<-inA
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := b.InTx(ctx, func(tx *sqlx.Tx) error { return insertItem(t, tx, "from b") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b's writer while a's ran: %v, want to wait its turn until its deadline", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.InTx(t.Context(), func(tx *sqlx.Tx) error { return insertItem(t, tx, "from b") }); err != nil {
		t.Fatal(err)
	}
	if n := countItems(t, b); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}
