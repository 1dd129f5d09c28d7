package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Notify sends payload on a PostgreSQL LISTEN/NOTIFY channel (delivered
// to listeners when the sending transaction, here its own, commits). On
// SQLite, a single-process database, it does nothing.
func (d *DB) Notify(ctx context.Context, channel, payload string) error {
	if d.Dialect != Postgres {
		return nil
	}
	if _, err := d.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("db: notify %s: %w", channel, err)
	}
	return nil
}

// Listen calls fn with the payload of every notification on channel until
// ctx ends, on one connection of the pool held for it. After each
// (re)connection it calls fn("") so the caller catches up on what it may
// have missed meanwhile. On SQLite it returns at once: there is nobody
// else to hear from.
func (d *DB) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if d.Dialect != Postgres {
		return nil
	}
	backoff := 100 * time.Millisecond
	for {
		err := d.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the caller ended the listening: not a failure
		}
		d.logger.WarnContext(ctx, "listen connection lost; reconnecting", "channel", channel, "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (d *DB) listenOnce(ctx context.Context, channel string, fn func(string)) error {
	conn, err := d.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("db: not a pgx connection")
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
		// A connection that had a LISTEN must not go back to the pool
		// listening: drop it when done.
		defer func() { _ = pc.Close(context.Background()) }()
		fn("")
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					return err
				}
				return driver.ErrBadConn
			}
			fn(n.Payload)
		}
	})
}
