// Package db opens Sigil's SQL databases and runs their embedded migrations.
//
// Every component keeps its state in SQL through sqlx: an embedded SQLite file by default
// (modernc.org/sqlite, pure Go), PostgreSQL when an operator runs several replicas or wants a
// managed database (pgx through database/sql). Open hides the per-driver setup that makes each
// safe for concurrent use; Migrate applies a component's goose migrations from an embedded
// file system with one folder per dialect. Queries are written with '?' placeholders and passed
// through [DB.Rebind] (inherited from sqlx) so one store serves both dialects.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"modernc.org/sqlite"
)

// Dialect names the SQL database behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Driver names as registered with database/sql.
const (
	sqliteDriver = "sqlite"
	pgxDriver    = "pgx"
)

// OnPostgres reports whether x (a DB, or a transaction of one) talks to
// PostgreSQL.
func OnPostgres(x interface{ DriverName() string }) bool { return x.DriverName() == pgxDriver }

// defaultPingTimeout bounds the first connection when the caller's context has no deadline, so a
// mistyped host fails start-up in seconds instead of hanging on the OS connect timeout.
const defaultPingTimeout = 10 * time.Second

// Config says which database to open.
type Config struct {
	// URL is a PostgreSQL URL (postgres://... or postgresql://...). Empty selects SQLite.
	URL string
	// SQLitePath is the SQLite database file, used when URL is empty. Its parent directory is
	// created with mode 0700 and a new file with mode 0600, as it may hold key material.
	SQLitePath string
	// Durable makes every SQLite commit reach the disk before it returns
	// (synchronous=FULL), for stores that must not lose what they have
	// reported, such as a signer's key shares. PostgreSQL commits are
	// durable already.
	Durable bool
	// Logger receives migration progress. Nil discards it: library code never writes to stdout.
	Logger *slog.Logger
}

// DB is an open database and its dialect.
type DB struct {
	*sqlx.DB
	Dialect Dialect

	logger *slog.Logger
	// writers, on SQLite, lets one of this process's write transactions
	// run at a time (see InTx).
	writers chan struct{}
}

// bindSQLite teaches sqlx that the "sqlite" driver (modernc) uses '?' placeholders: sqlx only
// knows mattn's "sqlite3" name. sqlx keeps its bind table in a process-wide map, so register once.
var bindSQLite sync.Once

// Open opens and pings the database cfg names. The caller closes it.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		d   *DB
		err error
	)
	switch {
	case cfg.URL == "":
		d, err = openSQLite(ctx, cfg.SQLitePath, cfg.Durable)
	case strings.HasPrefix(cfg.URL, "postgres://"), strings.HasPrefix(cfg.URL, "postgresql://"):
		d, err = openPostgres(ctx, cfg.URL)
	default:
		// Never echo the URL: it may carry a password.
		return nil, errors.New("db: unsupported database URL: want postgres:// or postgresql://, or no URL for SQLite")
	}
	if err != nil {
		return nil, err
	}
	d.logger = logger
	return d, nil
}

func openSQLite(ctx context.Context, path string, durable bool) (*DB, error) {
	if path == "" {
		return nil, errors.New("db: no database configured: set a PostgreSQL URL or a SQLite path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("db: resolve SQLite path %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("db: create directory for %s: %w", abs, err)
	}
	// SQLite would create the file 0644; create it first so it is owner-only from the start.
	// Its -wal and -shm files copy the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("db: open SQLite file %s: %w", abs, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("db: close SQLite file %s: %w", abs, err)
	}

	bindSQLite.Do(func() { sqlx.BindDriver(sqliteDriver, sqlx.QUESTION) })
	sdb := sqlx.NewDb(sql.OpenDB(sqliteConnector{dsn: sqliteDSN(abs, durable), drv: &sqlite.Driver{}}), sqliteDriver)
	// WAL lets readers run beside the single writer, so several connections pay off. Writers
	// serialise on BEGIN IMMEDIATE (_txlock) and wait up to busy_timeout instead of failing
	// with SQLITE_BUSY; a deferred transaction that later tries to write could not wait that way.
	sdb.SetMaxOpenConns(8)
	sdb.SetMaxIdleConns(8)
	sdb.SetConnMaxIdleTime(0) // every new connection re-runs the pragmas; keep them
	if err := ping(ctx, sdb); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("db: open SQLite %s: %w", abs, err)
	}
	return &DB{DB: sdb, Dialect: SQLite, writers: sqliteWriters(abs)}, nil
}

// sqliteWriterTurns holds, per SQLite file, the turn its write
// transactions take in this process: every DB opened on one file shares it.
var sqliteWriterTurns sync.Map // absolute path -> chan struct{}

func sqliteWriters(path string) chan struct{} {
	ch, _ := sqliteWriterTurns.LoadOrStore(path, make(chan struct{}, 1))
	return ch.(chan struct{})
}

// sqliteDSN builds modernc's DSN. With the file: prefix SQLite parses the name as a URI, so the
// characters that are special in a URI are escaped; modernc reads the _-prefixed parameters and
// SQLite ignores them.
func sqliteDSN(path string, durable bool) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	params := []string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=foreign_keys(1)",
		// NORMAL is durable in WAL mode except for the last transactions before a power loss;
		// FULL fsyncs every commit.
		"_pragma=synchronous(" + map[bool]string{false: "NORMAL", true: "FULL"}[durable] + ")",
		"_txlock=immediate",
	}
	return "file:" + escaped + "?" + strings.Join(params, "&")
}

func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	where := describePostgres(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts passwords only on a best-effort basis for malformed URLs: keep its text out.
		return nil, fmt.Errorf("db: invalid PostgreSQL URL for %s: check its syntax", where)
	}
	sdb := sqlx.NewDb(stdlib.OpenDB(*cfg), pgxDriver)
	// Enough for a coordinator replica's handlers and job workers without exhausting a default
	// PostgreSQL (100 connections) shared by several replicas and signers.
	sdb.SetMaxOpenConns(20)
	sdb.SetMaxIdleConns(10)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	// Recycle connections so replicas rebalance after a failover or a pooler restart.
	sdb.SetConnMaxLifetime(30 * time.Minute)
	if err := ping(ctx, sdb); err != nil {
		_ = sdb.Close()
		return nil, fmt.Errorf("db: cannot reach PostgreSQL at %s (check that the server is running and reachable, and the user, password, database and sslmode in the URL): %w", where, err)
	}
	return &DB{DB: sdb, Dialect: Postgres}, nil
}

// describePostgres names the server of a PostgreSQL URL for error messages, without userinfo.
func describePostgres(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "the configured URL"
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return u.Host
	}
	return u.Host + "/" + db
}

func ping(ctx context.Context, sdb *sqlx.DB) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPingTimeout)
		defer cancel()
	}
	return sdb.PingContext(ctx)
}
