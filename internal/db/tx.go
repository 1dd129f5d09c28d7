package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"
	"modernc.org/sqlite"
)

// InTx runs fn in a transaction and commits it when fn returns nil. It rolls back when fn
// returns an error, which it returns unchanged (so errors.Is works on domain errors), and when
// fn panics, after which it re-panics. On SQLite the transaction starts with BEGIN IMMEDIATE,
// so concurrent writers queue on the busy timeout instead of failing mid-transaction; the
// writers of this process queue in Go first, one at a time, and each starts the moment the
// one before commits (SQLite's own busy wait sleeps 1, 2, 5, 10 ms... between tries, idling
// the CPU while work waits).
func (d *DB) InTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	if d.writers != nil {
		release, err := d.writeTurn(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	tx, err := d.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback() // the panic is the news; a rollback error would only hide it
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		// ErrTxDone means database/sql already rolled back, as it does when ctx is cancelled.
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("db: rollback: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	return nil
}

// writeTurnLimit is how long a write transaction waits for the one before
// it in this process, as long as SQLite's busy timeout.
const writeTurnLimit = 10 * time.Second

// writeTurn waits until no other write transaction of this process runs.
func (d *DB) writeTurn(ctx context.Context) (release func(), err error) {
	timer := time.NewTimer(writeTurnLimit)
	defer timer.Stop()
	select {
	case d.writers <- struct{}{}:
		return func() { <-d.writers }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("db: begin transaction: %w", context.Cause(ctx))
	case <-timer.C:
		return nil, fmt.Errorf("db: begin transaction: another write transaction held the database for %s", writeTurnLimit)
	}
}

// SQLite extended result codes for unique violations (sqlite3.h).
const (
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
)

// pgUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const pgUniqueViolation = "23505"

// IsUniqueViolation reports whether err comes from a UNIQUE or PRIMARY KEY constraint, on
// either dialect. Stores use it to turn a duplicate insert into their own AlreadyExists error.
func IsUniqueViolation(err error) bool {
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		code := sqliteErr.Code()
		return code == sqliteConstraintUnique || code == sqliteConstraintPrimaryKey
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == pgUniqueViolation
	}
	return false
}
