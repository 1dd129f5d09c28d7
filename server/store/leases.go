package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
)

// Lease is which coordinator replica drives a running ceremony, until when,
// and the epoch of that ownership: every start or takeover raises the
// epoch, and every outcome written on the lease names the epoch it holds
// (CeremonyFinish.Lease), so a replica that lost its lease (paused past its
// expiry, say) cannot end the ceremony.
type Lease struct {
	Owner string
	Epoch int64
	Until time.Time
}

// Expired reports whether the lease lapsed at now.
func (l Lease) Expired(now time.Time) bool { return !l.Until.After(now) }

// Leases is how several coordinator replicas share MPC ceremonies through
// the database: ceremony ownership by lease, and signer presence by
// heartbeat rows. All times are given by the caller's clock.
type Leases interface {
	// StartLeased moves a waiting ceremony to running with its parties,
	// owned by owner until until; it returns the lease taken (epoch raised
	// by one). ErrStateConflict when the ceremony is not waiting;
	// ErrSignerBusy when maxPerSigner > 0 and a party already runs that many
	// ceremonies (checked under a lock all replicas take, so the bound holds
	// across replicas).
	StartLeased(ctx context.Context, id string, parties []string, deadline time.Time, owner string, until time.Time, maxPerSigner int) (Lease, error)
	// RenewLeases extends to until every unexpired lease owner holds on a
	// running ceremony, and returns how many it extended. An expired lease
	// is not renewed, even by its owner: it is taken over like any other.
	RenewLeases(ctx context.Context, owner string, now, until time.Time) (int64, error)
	// TakeOverCeremony moves the expired lease of a running ceremony, seen
	// at epoch seen, to owner until until. ErrLeaseLost when the lease has
	// not expired or changed since (someone else took it).
	TakeOverCeremony(ctx context.Context, id string, seen int64, owner string, now, until time.Time) (Lease, error)
	// ReleaseLeases lets every lease owner holds lapse at once (a clean
	// shutdown), so another replica takes them over without waiting.
	ReleaseLeases(ctx context.Context, owner string) error

	// SignerJoined records that p.Signer's ceremony stream is connected to
	// p.Replica (replacing any earlier row of the signer).
	SignerJoined(ctx context.Context, p *SignerPresence) error
	// SignerLeft records that the stream (replica, stream) of signer closed,
	// unless a newer stream replaced it.
	SignerLeft(ctx context.Context, signer, replica string, stream int64, at time.Time) error
	// HeartbeatSigners refreshes the heartbeat of every signer connected to
	// replica.
	HeartbeatSigners(ctx context.Context, replica string, at time.Time) error
	// SignerPresences returns every signer's row.
	SignerPresences(ctx context.Context) ([]*SignerPresence, error)
}

// SignerPresence is where one signer's ceremony stream is connected.
type SignerPresence struct {
	Signer       string
	Replica      string
	Stream       int64
	Announcement []byte
	ConnectedAt  time.Time
	HeartbeatAt  time.Time
	LeftAt       time.Time // zero while connected
}

// startLockKey is the PostgreSQL advisory lock that serialises ceremony
// starts across replicas, so the per-signer bound is checked and applied
// atomically.
const startLockKey = 0x5161_6c01

// StartLeased implements Leases.
func (s *SQL) StartLeased(ctx context.Context, id string, parties []string, deadline time.Time, owner string, until time.Time, maxPerSigner int) (Lease, error) {
	var l Lease
	err := s.db.InTx(ctx, func(tx *sqlx.Tx) error {
		if maxPerSigner > 0 {
			if err := s.checkBusy(ctx, tx, parties, maxPerSigner); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE ceremonies SET state = ?, parties = ?, deadline = ?, updated_at = ?,
			lease_owner = ?, lease_epoch = lease_epoch + 1, lease_until = ? WHERE id = ? AND state = ?`),
			string(CeremonyRunning), joinNames(parties), micros(deadline), micros(s.now()), owner, micros(until),
			id, string(CeremonyWaiting))
		if err != nil {
			return fmt.Errorf("start ceremony %s: %w", id, err)
		}
		if err := expectOne(res, fmt.Errorf("%w: ceremony %s is not waiting", ErrStateConflict, id)); err != nil {
			return err
		}
		c, err := s.getCeremony(ctx, tx, id)
		if err != nil {
			return err
		}
		l = c.Lease
		return nil
	})
	return l, err
}

// checkBusy refuses a start that would give a party more than max running
// ceremonies.
func (s *SQL) checkBusy(ctx context.Context, tx *sqlx.Tx, parties []string, most int) error {
	if s.db.Dialect == db.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, startLockKey); err != nil {
			return fmt.Errorf("lock ceremony starts: %w", err)
		}
	}
	var running []string
	if err := tx.SelectContext(ctx, &running, tx.Rebind(`SELECT parties FROM ceremonies WHERE state = ?`), string(CeremonyRunning)); err != nil {
		return fmt.Errorf("count running ceremonies: %w", err)
	}
	busy := map[string]int{}
	for _, ps := range running {
		for _, p := range splitNames(ps) {
			busy[p]++
		}
	}
	for _, p := range parties {
		if busy[p] >= most {
			return fmt.Errorf("%w: %s runs %d", ErrSignerBusy, p, busy[p])
		}
	}
	return nil
}

// RenewLeases implements Leases.
func (s *SQL) RenewLeases(ctx context.Context, owner string, now, until time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE ceremonies SET lease_until = ?
		WHERE lease_owner = ? AND state = ? AND lease_until > ?`), micros(until), owner, string(CeremonyRunning), micros(now))
	if err != nil {
		return 0, fmt.Errorf("renew ceremony leases: %w", err)
	}
	return res.RowsAffected()
}

// TakeOverCeremony implements Leases.
func (s *SQL) TakeOverCeremony(ctx context.Context, id string, seen int64, owner string, now, until time.Time) (Lease, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE ceremonies SET lease_owner = ?, lease_epoch = lease_epoch + 1, lease_until = ?
		WHERE id = ? AND state = ? AND lease_epoch = ? AND lease_until <= ?`),
		owner, micros(until), id, string(CeremonyRunning), seen, micros(now))
	if err != nil {
		return Lease{}, fmt.Errorf("take over ceremony %s: %w", id, err)
	}
	if err := expectOne(res, fmt.Errorf("%w: ceremony %s is held, ended or taken by another replica", ErrLeaseLost, id)); err != nil {
		return Lease{}, err
	}
	return Lease{Owner: owner, Epoch: seen + 1, Until: until}, nil
}

// ReleaseLeases implements Leases.
func (s *SQL) ReleaseLeases(ctx context.Context, owner string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE ceremonies SET lease_until = 0 WHERE lease_owner = ? AND state = ?`),
		owner, string(CeremonyRunning))
	if err != nil {
		return fmt.Errorf("release ceremony leases: %w", err)
	}
	return nil
}

// SignerJoined implements Leases.
func (s *SQL) SignerJoined(ctx context.Context, p *SignerPresence) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO signer_presence
		(signer, replica, stream, announcement, connected_at, heartbeat_at, left_at) VALUES (?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT (signer) DO UPDATE SET replica = excluded.replica, stream = excluded.stream,
			announcement = excluded.announcement, connected_at = excluded.connected_at,
			heartbeat_at = excluded.heartbeat_at, left_at = 0`),
		p.Signer, p.Replica, p.Stream, p.Announcement, micros(p.ConnectedAt), micros(p.ConnectedAt))
	if err != nil {
		return fmt.Errorf("record signer %s online: %w", p.Signer, err)
	}
	return nil
}

// SignerLeft implements Leases.
func (s *SQL) SignerLeft(ctx context.Context, signer, replica string, stream int64, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE signer_presence SET left_at = ?
		WHERE signer = ? AND replica = ? AND stream = ?`), micros(at), signer, replica, stream)
	if err != nil {
		return fmt.Errorf("record signer %s offline: %w", signer, err)
	}
	return nil
}

// HeartbeatSigners implements Leases.
func (s *SQL) HeartbeatSigners(ctx context.Context, replica string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE signer_presence SET heartbeat_at = ? WHERE replica = ? AND left_at = 0`),
		micros(at), replica)
	if err != nil {
		return fmt.Errorf("signer heartbeats: %w", err)
	}
	return nil
}

// SignerPresences implements Leases.
func (s *SQL) SignerPresences(ctx context.Context) ([]*SignerPresence, error) {
	var rows []struct {
		Signer       string `db:"signer"`
		Replica      string `db:"replica"`
		Stream       int64  `db:"stream"`
		Announcement []byte `db:"announcement"`
		ConnectedAt  int64  `db:"connected_at"`
		HeartbeatAt  int64  `db:"heartbeat_at"`
		LeftAt       int64  `db:"left_at"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT signer, replica, stream, announcement, connected_at, heartbeat_at, left_at
		FROM signer_presence ORDER BY signer`); err != nil {
		return nil, fmt.Errorf("list signer presence: %w", err)
	}
	out := make([]*SignerPresence, len(rows))
	for i, r := range rows {
		p := &SignerPresence{Signer: r.Signer, Replica: r.Replica, Stream: r.Stream, Announcement: r.Announcement,
			ConnectedAt: fromMicros(r.ConnectedAt), HeartbeatAt: fromMicros(r.HeartbeatAt)}
		if r.LeftAt != 0 {
			p.LeftAt = fromMicros(r.LeftAt)
		}
		out[i] = p
	}
	return out, nil
}

// WakeupChannel is the PostgreSQL LISTEN/NOTIFY channel replicas wake each
// other on about ceremonies.
const WakeupChannel = "sigil_ceremonies"

// Wakeups carries prompt wake-ups between replicas: LISTEN/NOTIFY on
// PostgreSQL, nothing on SQLite (one replica). Polling remains the fallback
// for a wake-up lost with a connection.
type Wakeups interface {
	// Wake sends payload to every replica's listener (this one's too).
	Wake(ctx context.Context, payload string) error
	// ListenWakeups calls fn with each payload until ctx ends, and with ""
	// after each (re)connection.
	ListenWakeups(ctx context.Context, fn func(payload string)) error
}

// Wake implements Wakeups.
func (s *SQL) Wake(ctx context.Context, payload string) error {
	return s.db.Notify(ctx, WakeupChannel, payload)
}

// ListenWakeups implements Wakeups.
func (s *SQL) ListenWakeups(ctx context.Context, fn func(payload string)) error {
	return s.db.Listen(ctx, WakeupChannel, fn)
}
