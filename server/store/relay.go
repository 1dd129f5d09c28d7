package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

// RelayMessage is one sealed message in a signer's mailbox. The relay
// stores it as it came: the coordinator cannot read it.
type RelayMessage struct {
	Pos        int64 // the cursor: increasing within a mailbox
	CeremonyID string
	Sender     string
	Recipient  string
	Sealed     []byte
	CreatedAt  time.Time
}

// OutgoingMessage is one sealed message a sender hands to the relay.
type OutgoingMessage struct {
	Recipient string
	Sealed    []byte
}

// Relay is the blind mailbox of the DeliveryService.
type Relay interface {
	// AppendMessages stores messages from sender, all or none.
	AppendMessages(ctx context.Context, ceremonyID, sender string, msgs []OutgoingMessage) error
	// AppendMessagesWithin is AppendMessages under a quota: it stores none
	// and returns a *QuotaError when sender's messages in the ceremony,
	// these included, would pass limit.
	AppendMessagesWithin(ctx context.Context, ceremonyID, sender string, msgs []OutgoingMessage, limit RelayLimit) error
	// Mailbox returns up to limit messages for recipient after pos.
	Mailbox(ctx context.Context, ceremonyID, recipient string, afterPos int64, limit int) ([]*RelayMessage, error)
	// CountRelayMessages counts the messages stored for a ceremony (all
	// ceremonies when empty).
	CountRelayMessages(ctx context.Context, ceremonyID string) (int, error)
}

// RelayLimit bounds what one sender may store in one ceremony. Zero
// fields are unbounded.
type RelayLimit struct {
	Messages int
	Bytes    int64
}

// QuotaError says a sender reached its RelayLimit. It wraps ErrQuotaExceeded.
type QuotaError struct {
	Limit        RelayLimit
	UsedMessages int   // stored before this batch
	UsedBytes    int64 // stored before this batch
	Messages     int   // in this batch
	Bytes        int64 // in this batch
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("relay quota exceeded: %d messages (%d bytes) stored plus %d (%d bytes) sent would pass the limit of %d messages and %d bytes per party",
		e.UsedMessages, e.UsedBytes, e.Messages, e.Bytes, e.Limit.Messages, e.Limit.Bytes)
}

func (e *QuotaError) Unwrap() error { return ErrQuotaExceeded }

// AppendMessages stores a batch of sealed messages in one transaction.
func (s *SQL) AppendMessages(ctx context.Context, ceremonyID, sender string, msgs []OutgoingMessage) error {
	return s.AppendMessagesWithin(ctx, ceremonyID, sender, msgs, RelayLimit{})
}

// AppendMessagesWithin stores a batch of sealed messages in one
// transaction, unless it would take sender past limit. The count and the
// insert share the transaction, which holds the ceremony's lock (PostgreSQL)
// or the database's (SQLite), so concurrent sends cannot both squeeze in.
func (s *SQL) AppendMessagesWithin(ctx context.Context, ceremonyID, sender string, msgs []OutgoingMessage, limit RelayLimit) error {
	now := micros(s.now())
	return s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if s.db.Dialect == db.Postgres {
			// Serialise the ceremony's senders, so positions commit in
			// order: a reader that saw position 11 must never later find
			// a 10 committed behind its cursor. (SQLite has one writer.)
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM ceremonies WHERE id = $1 FOR UPDATE`, ceremonyID); err != nil {
				return fmt.Errorf("lock ceremony %s: %w", ceremonyID, err)
			}
		}
		if err := s.lockedCheckQuota(ctx, tx, ceremonyID, sender, msgs, limit); err != nil {
			return err
		}
		q := tx.Rebind(`INSERT INTO relay_messages (ceremony_id, sender, recipient, sealed, created_at) VALUES (?, ?, ?, ?, ?)`)
		for _, m := range msgs {
			if _, err := tx.ExecContext(ctx, q, ceremonyID, sender, m.Recipient, m.Sealed, now); err != nil {
				return fmt.Errorf("insert relayed message: %w", err)
			}
		}
		return nil
	})
}

// lockedCheckQuota returns a *QuotaError when msgs would take sender past
// limit in the ceremony; the caller's transaction serialises the senders.
func (s *SQL) lockedCheckQuota(ctx context.Context, tx *sqlx.Tx, ceremonyID, sender string, msgs []OutgoingMessage, limit RelayLimit) error {
	if limit.Messages <= 0 && limit.Bytes <= 0 {
		return nil
	}
	qe := &QuotaError{Limit: limit, Messages: len(msgs)}
	for _, m := range msgs {
		qe.Bytes += int64(len(m.Sealed))
	}
	var used struct {
		N     int   `db:"n"`
		Bytes int64 `db:"bytes"`
	}
	err := tx.GetContext(ctx, &used, tx.Rebind(`SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(sealed)), 0) AS bytes
		FROM relay_messages WHERE ceremony_id = ? AND sender = ?`), ceremonyID, sender)
	if err != nil {
		return fmt.Errorf("count relayed messages of %s: %w", sender, err)
	}
	qe.UsedMessages, qe.UsedBytes = used.N, used.Bytes
	if (limit.Messages > 0 && used.N+qe.Messages > limit.Messages) || (limit.Bytes > 0 && used.Bytes+qe.Bytes > limit.Bytes) {
		return qe
	}
	return nil
}

// Mailbox returns messages for recipient after pos, in order.
func (s *SQL) Mailbox(ctx context.Context, ceremonyID, recipient string, afterPos int64, limit int) ([]*RelayMessage, error) {
	var rows []struct {
		Pos        int64  `db:"pos"`
		CeremonyID string `db:"ceremony_id"`
		Sender     string `db:"sender"`
		Recipient  string `db:"recipient"`
		Sealed     []byte `db:"sealed"`
		CreatedAt  int64  `db:"created_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT pos, ceremony_id, sender, recipient, sealed, created_at
		FROM relay_messages WHERE ceremony_id = ? AND recipient = ? AND pos > ? ORDER BY pos LIMIT ?`),
		ceremonyID, recipient, afterPos, limit)
	if err != nil {
		return nil, fmt.Errorf("read mailbox: %w", err)
	}
	out := make([]*RelayMessage, len(rows))
	for i, r := range rows {
		out[i] = &RelayMessage{Pos: r.Pos, CeremonyID: r.CeremonyID, Sender: r.Sender, Recipient: r.Recipient,
			Sealed: r.Sealed, CreatedAt: fromMicros(r.CreatedAt)}
	}
	return out, nil
}

// CountRelayMessages counts stored messages.
func (s *SQL) CountRelayMessages(ctx context.Context, ceremonyID string) (int, error) {
	var n int
	var err error
	if ceremonyID == "" {
		err = s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM relay_messages`)
	} else {
		err = s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM relay_messages WHERE ceremony_id = ?`), ceremonyID)
	}
	if err != nil {
		return 0, fmt.Errorf("count relayed messages: %w", err)
	}
	return n, nil
}
