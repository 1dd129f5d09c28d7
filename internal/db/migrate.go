package db

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrate applies every pending migration of migrations to the database. migrations holds one
// folder per dialect, "sqlite" and "postgres", of goose SQL files; the folder matching d.Dialect
// is used. table is the goose version table of the calling component (for example
// "goose_server" or "goose_signer"): components may share one PostgreSQL database, and a shared
// version table would make each see the other's versions as its own.
//
// On PostgreSQL the run holds an advisory lock named after the schema and table, so replicas
// starting together migrate one at a time. Migrate is idempotent.
func (d *DB) Migrate(ctx context.Context, migrations fs.FS, table string) error {
	if err := validateTable(table); err != nil {
		return err
	}
	folder := string(d.Dialect)
	sub, err := fs.Sub(migrations, folder)
	if err != nil {
		return fmt.Errorf("db: migrations for %s: %w", folder, err)
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(table),
		goose.WithSlog(d.logger.With("component", "migrate", "table", table)),
		// Go migrations registered globally by any imported package would otherwise be merged
		// into every component's provider.
		goose.WithDisableGlobalRegistry(true),
	}
	var dialect goose.Dialect
	switch d.Dialect {
	case SQLite:
		// One process owns a SQLite file, and each migration runs in a BEGIN IMMEDIATE
		// transaction, so no extra lock is needed.
		dialect = goose.DialectSQLite3
	case Postgres:
		dialect = goose.DialectPostgres
		locker, err := d.sessionLocker(ctx, table)
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	default:
		return fmt.Errorf("db: unknown dialect %q", d.Dialect)
	}

	provider, err := goose.NewProvider(dialect, d.DB.DB, sub, opts...)
	if err != nil {
		if errors.Is(err, goose.ErrNoMigrations) {
			return fmt.Errorf("db: no migrations in folder %q: %w", folder, err)
		}
		return fmt.Errorf("db: prepare migrations (%s): %w", table, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("db: migrate %s: %w", table, err)
	}
	return nil
}

// sessionLocker returns a PostgreSQL advisory lock unique to the current schema and version
// table: goose's default lock id is shared by every goose user of the database, which would
// make unrelated components (or parallel tests in separate schemas) wait on each other.
func (d *DB) sessionLocker(ctx context.Context, table string) (lock.SessionLocker, error) {
	var schema string
	if err := d.GetContext(ctx, &schema, "SELECT current_schema()"); err != nil {
		return nil, fmt.Errorf("db: read current schema: %w", err)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte("sigil-migrate\x00" + schema + "\x00" + table)) // hash.Hash never fails
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())), // any 64 bits will do; wrapping into int64 is fine
		// Poll every second for up to five minutes: a replica waiting on another's migration
		// should start as soon as that finishes, not on goose's five-second beat.
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return nil, fmt.Errorf("db: migration lock: %w", err)
	}
	return locker, nil
}

// validateTable accepts lowercase SQL identifiers only: goose formats the table name into its
// SQL unquoted.
func validateTable(table string) error {
	if table == "" || len(table) > 63 {
		return fmt.Errorf("db: invalid migration table name %q: want 1 to 63 characters", table)
	}
	for i, c := range table {
		ok := (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return fmt.Errorf("db: invalid migration table name %q: want lowercase letters, digits and '_'", table)
		}
	}
	return nil
}
