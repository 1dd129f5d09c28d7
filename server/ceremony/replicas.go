package ceremony

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// Several coordinator replicas run MPC on one PostgreSQL database. The
// database is the only shared engine; there is no consensus of our own:
//
//   - Ownership. A replica that starts a ceremony holds its lease (owner,
//     epoch, expiry in the ceremonies row) and renews it every LeaseTTL/3
//     while it drives it: only the holder times the ceremony out or fails
//     it for a party gone offline. A replica that finds a running ceremony
//     whose lease expired (its replica died or stalled) takes the lease
//     over, raising the epoch, and fails the attempt: a signature is retried
//     with a new quorum at once, a key generation starts again with the
//     same signers (each discards the share the dead attempt left pending,
//     having asked how it ended), until MaxSignAttempts. A replica
//     never touches a ceremony whose lease another replica holds, so a
//     replica that starts disturbs nothing.
//   - Fencing. Every outcome is written with the epoch its writer saw
//     (CeremonyFinish.Lease) and checked in the transaction that writes it:
//     a replica paused past its lease (SIGSTOP) that resumes cannot end a
//     ceremony another replica took over. Outcomes decided from the
//     signers' reports are fenced the same way against the epoch read with
//     the ceremony.
//   - Presence. Each signer's ceremony stream is connected to one replica;
//     that replica records it in signer_presence (with the announcement)
//     and refreshes a heartbeat. A signer is online when its own replica
//     has its stream, or another replica's row is fresh (heartbeat younger
//     than LeaseTTL). sharedPresence implements Presence over both.
//   - Events. A replica hands ceremonies only to the signers connected to
//     it. The ceremonies table is the source of truth: on each step every
//     replica compares the running ceremonies with what it sent each of its
//     streams, and sends what is new (a ceremony started by any replica)
//     and the end of what is gone. The owner also sends at once to its own
//     streams. A signer ignores a ceremony delivered twice.
//   - Relay. Sealed messages are rows; Receive on any replica reads them,
//     woken by LISTEN/NOTIFY on PostgreSQL (polling stays as a fallback).
//
// On SQLite there is one replica; the same code runs with itself as the
// only owner.

// DefaultLeaseTTL is how long a ceremony lease and a signer heartbeat last
// without renewal: a dead replica's ceremonies are taken over within it.
const DefaultLeaseTTL = 5 * time.Second

// ReplicaID names this process among the replicas: name (default: host
// and pid) and a random suffix, so a restarted process is a new owner.
func ReplicaID(name string) string {
	if name == "" {
		host, _ := os.Hostname()
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// Replica is this orchestrator's replica id (the owner of its leases).
func (o *Orchestrator) Replica() string { return o.cfg.Replica }

// maintain renews this replica's leases and signer heartbeats every
// LeaseTTL/3, and refreshes the view of signers connected elsewhere.
func (o *Orchestrator) maintain(ctx context.Context) error {
	now := o.now()
	var errs []error
	if now.Sub(o.lastRenew) >= o.cfg.LeaseTTL/3 {
		if _, err := o.store.RenewLeases(ctx, o.cfg.Replica, now, now.Add(o.cfg.LeaseTTL)); err != nil {
			errs = append(errs, err)
		} else {
			o.lastRenew = now
		}
		if o.shared != nil {
			errs = append(errs, o.store.HeartbeatSigners(ctx, o.cfg.Replica, now))
		}
	}
	if o.shared != nil {
		rows, err := o.store.SignerPresences(ctx)
		if err != nil {
			errs = append(errs, err)
		} else {
			o.shared.update(rows)
		}
	}
	return errors.Join(errs...)
}

// runningElsewhere reports whether c runs under another replica's live
// lease; takeOver takes an expired lease and fails the attempt another
// replica drove. This replica's own expired lease (it stalled, or could not
// reach the database for a while) is taken again the same way, raising the
// epoch, and the ceremony carries on: its signers are still connected.
func (o *Orchestrator) runningElsewhere(c *store.Ceremony) bool {
	return c.Lease.Owner != o.cfg.Replica && !c.Lease.Expired(o.now())
}

func (o *Orchestrator) takeOver(ctx context.Context, c *store.Ceremony) error {
	now := o.now()
	prev := c.Lease
	l, err := o.store.TakeOverCeremony(ctx, c.ID, prev.Epoch, o.cfg.Replica, now, now.Add(o.cfg.LeaseTTL))
	if errors.Is(err, store.ErrLeaseLost) {
		return nil // another replica took it first, or it ended
	}
	if err != nil {
		return err
	}
	c.Lease = l
	if prev.Owner == o.cfg.Replica {
		return o.checkRunning(ctx, c)
	}
	o.metrics.takeovers.Inc()
	owner := prev.Owner
	if owner == "" {
		owner = "a previous coordinator"
	}
	o.logger.WarnContext(ctx, "taking over a ceremony whose lease expired", "ceremony", c.ID, "kind", c.Kind,
		"previous_owner", prev.Owner, "epoch", l.Epoch)
	return o.restartAttempt(ctx, c, fmt.Sprintf("the coordinator replica running it (%s) stopped or restarted: its lease expired", owner))
}

// restartAttempt ends an attempt that failed through no fault of its
// parties (the replica driving it died). A signature goes on as after any
// failed attempt; a key generation, which does not retry a failure its
// signers may have caused, starts again here with the same signers: its
// wallet waits for a key rather than fail for a replica's crash.
func (o *Orchestrator) restartAttempt(ctx context.Context, c *store.Ceremony, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c.Kind != store.CeremonyKeygen || c.Attempt+1 >= o.cfg.MaxSignAttempts {
		return o.failAttemptLocked(ctx, c, reason, nil)
	}
	o.metrics.retries.Inc()
	o.logger.WarnContext(ctx, "key generation attempt lost with its replica; starting it again", "ceremony", c.ID,
		"wallet", c.WalletID, "attempt", c.Attempt, "reason", reason)
	return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonyFailed, Reason: reason,
		Retry: &store.Ceremony{ID: ids.New(ids.Ceremony), Attempt: c.Attempt + 1, Excluded: c.Excluded}})
}

// release lets this replica's leases lapse at a clean shutdown, so another
// replica (or this one restarted) takes them over without waiting.
func (o *Orchestrator) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.store.ReleaseLeases(ctx, o.cfg.Replica); err != nil {
		o.logger.WarnContext(ctx, "release ceremony leases", "error", err)
	}
}

// signerJoined and signerLeft record a local stream in the presence rows.
func (o *Orchestrator) signerJoined(ctx context.Context, c *signerConn) {
	if o.shared == nil {
		return
	}
	if err := o.store.SignerJoined(ctx, &store.SignerPresence{Signer: c.name, Replica: o.cfg.Replica, Stream: int64(c.id),
		Announcement: c.announcement, ConnectedAt: c.since}); err != nil {
		o.logger.WarnContext(ctx, "record signer presence", "signer", c.name, "error", err)
	}
}

func (o *Orchestrator) signerLeft(c *signerConn) {
	if o.shared == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.store.SignerLeft(ctx, c.name, o.cfg.Replica, int64(c.id), o.now()); err != nil {
		o.logger.WarnContext(ctx, "record signer offline", "signer", c.name, "error", err)
	}
}

// syncStreams hands each local stream the running ceremonies it takes part
// in that it was not sent yet (started by any replica), and the end of
// those it was sent that are no longer open.
func (o *Orchestrator) syncStreams(ctx context.Context, open []*store.Ceremony) error {
	running := map[string]*store.Ceremony{}
	for _, c := range open {
		if c.State == store.CeremonyRunning {
			running[c.ID] = c
		}
	}
	var errs []error
	for _, conn := range o.streams.all() {
		for _, c := range running {
			if !slices.Contains(c.Parties, conn.name) || o.streams.wasSent(conn, c.ID) {
				continue
			}
			peers, ok := o.presence.Announcements(c.Parties)
			if !ok {
				continue // a peer is away; the owner fails or retries it
			}
			msg, err := o.toProto(ctx, c, peers)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			o.streams.sendTo(conn, event(msg))
		}
		for _, id := range o.streams.sentIDs(conn) {
			if _, ok := running[id]; ok {
				continue
			}
			c, err := o.store.GetCeremony(ctx, id)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if c.State == store.CeremonyRunning {
				continue // started after the list was read
			}
			o.streams.sendTo(conn, ended(id, c.State))
		}
	}
	return errors.Join(errs...)
}

// sharedPresence is Presence across replicas: this replica's streams, and
// the presence rows of signers connected to other replicas.
type sharedPresence struct {
	local   *streams
	replica string
	ttl     time.Duration
	now     func() time.Time

	mu   sync.Mutex
	rows map[string]*store.SignerPresence
}

func (p *sharedPresence) update(rows []*store.SignerPresence) {
	m := make(map[string]*store.SignerPresence, len(rows))
	for _, r := range rows {
		m[r.Signer] = r
	}
	p.mu.Lock()
	p.rows = m
	p.mu.Unlock()
}

// remote returns the row of a signer online on another replica.
func (p *sharedPresence) remote(name string) (*store.SignerPresence, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rows[name]
	if !ok || r.Replica == p.replica || !r.LeftAt.IsZero() || p.now().Sub(r.HeartbeatAt) > p.ttl {
		return r, false
	}
	return r, true
}

func (p *sharedPresence) Online(candidates []string) []string {
	local := p.local.Online(candidates)
	var out []string
	for _, n := range candidates {
		if slices.Contains(local, n) {
			out = append(out, n)
		} else if _, ok := p.remote(n); ok {
			out = append(out, n)
		}
	}
	return out
}

func (p *sharedPresence) OfflineSince(name string) (time.Time, bool) {
	since, off := p.local.OfflineSince(name)
	if !off {
		return since, false
	}
	r, ok := p.remote(name)
	if ok {
		return time.Time{}, false
	}
	if r != nil && r.Replica != p.replica {
		seen := r.LeftAt
		if seen.IsZero() {
			seen = r.HeartbeatAt
		}
		if seen.After(since) {
			since = seen
		}
	}
	return since, true
}

func (p *sharedPresence) Announcements(names []string) ([]*ceremonyv1.PeerAnnouncement, bool) {
	out := make([]*ceremonyv1.PeerAnnouncement, 0, len(names))
	for _, n := range names {
		if a, ok := p.local.Announcements([]string{n}); ok {
			out = append(out, a...)
			continue
		}
		r, ok := p.remote(n)
		if !ok {
			return nil, false
		}
		out = append(out, &ceremonyv1.PeerAnnouncement{Signer: n, Announcement: r.Announcement})
	}
	return out, true
}

// Send reaches the signers connected here; the others' replicas send them
// the same from the database (syncStreams).
func (p *sharedPresence) Send(names []string, ev *ceremonyv1.WatchCeremoniesResponse) {
	p.local.Send(names, ev)
}

// Wake-up kinds between replicas (payload "kind replica id,id,...").
const (
	wakeCeremony = "c" // a ceremony started or ended: step, end its Receive streams
	wakeRelay    = "r" // a message for a ceremony was relayed
	wakeSettled  = "s" // wallets or signatures were settled
)

// wakeOthers tells the other replicas (LISTEN/NOTIFY on PostgreSQL) about
// a change, so they act on it without waiting for their next poll.
func (o *Orchestrator) wakeOthers(ctx context.Context, kind string, ids ...string) {
	if len(ids) == 0 {
		return
	}
	payload := kind + " " + o.cfg.Replica + " " + strings.Join(ids, ",")
	if err := o.store.Wake(context.WithoutCancel(ctx), payload); err != nil {
		o.logger.WarnContext(ctx, "wake other replicas", "error", err)
	}
}

// onWakeup handles a wake-up from another replica; "" (a new listen
// connection) wakes the step, which catches up on everything.
func (o *Orchestrator) onWakeup(payload string) {
	kind, rest, _ := strings.Cut(payload, " ")
	from, list, _ := strings.Cut(rest, " ")
	if payload != "" && from == o.cfg.Replica {
		return
	}
	var ids []string
	if list != "" {
		ids = strings.Split(list, ",")
	}
	switch kind {
	case wakeCeremony:
		for _, id := range ids {
			o.hub.Notify(id)
		}
		o.NotifyWork()
	case wakeRelay:
		for _, id := range ids {
			o.hub.Notify(id)
		}
	case wakeSettled:
		if o.cfg.Settled != nil && len(ids) > 0 {
			o.cfg.Settled(ids...)
		}
	default:
		o.NotifyWork()
	}
}

// listen runs the wake-up listener until ctx ends.
func (o *Orchestrator) listen(ctx context.Context) {
	if err := o.store.ListenWakeups(ctx, o.onWakeup); err != nil && ctx.Err() == nil {
		o.logger.ErrorContext(ctx, "wake-up listener stopped; falling back to polling", "error", err)
	}
}
