package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"

	"modernc.org/sqlite"
)

// SQLite compiles every statement it runs; modernc's driver compiles again
// for each Exec and Query, and on the HSM queue's hot path parsing SQL cost
// as much as running it. Each SQLite connection here keeps the statements
// it compiled, keyed by their text, and runs them again with new
// arguments. (pgx caches statements per connection by itself.)

// stmtCacheSize bounds the statements one connection keeps: more than the
// queries the code base holds, few enough that queries built with varying
// text (IN lists of varying length) cannot grow it without bound; when it
// is full, a statement not in use makes room.
const stmtCacheSize = 256

// sqliteConnector opens modernc connections that cache their statements.
type sqliteConnector struct {
	dsn string
	drv *sqlite.Driver
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, errors.New("db: the SQLite driver's connection lacks the context methods")
	}
	return &cachingConn{sqliteConn: inner, stmts: make(map[string]*cachedStmt)}, nil
}

func (c sqliteConnector) Driver() driver.Driver { return c.drv }

// sqliteConn is what database/sql uses of a modernc connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is a modernc connection with a statement cache. database/sql
// uses a connection from one goroutine at a time, so the cache needs no
// lock; but a statement whose rows are still open (a query run while
// iterating another's rows) cannot run again until they close, so such a
// statement is marked busy and a second use compiles a one-off copy.
type cachingConn struct {
	sqliteConn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	stmt interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	busy bool
}

var _ sqliteConn = (*cachingConn)(nil)

// cached returns the statement compiled for query, compiling it the first
// time; nil when query should not be cached or the statement is busy.
func (c *cachingConn) cached(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	// A script (several statements) runs statement by statement through
	// the driver's own path.
	if strings.Contains(query, ";") {
		return nil, nil
	}
	if len(c.stmts) >= stmtCacheSize {
		c.evictOne()
	}
	ds, err := c.sqliteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	st, ok := ds.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		_ = ds.Close()
		return nil, nil
	}
	s := &cachedStmt{stmt: st}
	c.stmts[query] = s
	return s, nil
}

// evictOne finalises one cached statement that is not in use (map order:
// any one), making room for another.
func (c *cachingConn) evictOne() {
	for query, s := range c.stmts {
		if !s.busy {
			_ = s.stmt.Close()
			delete(c.stmts, query)
			return
		}
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	return s.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := s.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &releasingRows{Rows: rows, s: s}, nil
}

// Close finalises the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for _, s := range c.stmts {
		errs = append(errs, s.stmt.Close())
	}
	clear(c.stmts)
	return errors.Join(append(errs, c.sqliteConn.Close())...)
}

// releasingRows frees its statement for the next use when closed.
type releasingRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}
