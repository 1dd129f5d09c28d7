// Package ceremony runs MPC key generation and signing from the
// coordinator's side: it starts ceremonies when their signers are online,
// hands them to the signers (CeremonyService), relays their sealed messages
// (DeliveryService), checks what they report, and retries a signature with
// another quorum when a signer fails. The coordinator never sees a share or
// a message in clear: it only routes and checks public results.
package ceremony

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/settle"
	"github.com/sigil-wallet/sigil/server/store"
)

// Store is what the orchestrator needs of storage.
type Store interface {
	store.Ceremonies
	store.Presignatures
	store.KeyPool
	store.Relay
	store.Backups
	store.Leases
	store.Wakeups
	CreateWallet(ctx context.Context, w *store.Wallet, work store.Work) (*store.Wallet, bool, error)
	GetWallet(ctx context.Context, id string) (*store.Wallet, error)
	GetSignature(ctx context.Context, id string) (*store.Signature, error)
}

// Config tunes the orchestrator. Zero values take the defaults.
type Config struct {
	// KeygenTimeout bounds a key generation once started, and separately
	// the wait for every signer of the group to be online (default 5 min).
	// Time queued behind other ceremonies counts against neither.
	KeygenTimeout time.Duration
	// MaxConcurrent bounds the ceremonies one signer runs at once
	// (default DefaultMaxConcurrent); the others wait in a queue.
	MaxConcurrent int
	// SignTimeout bounds one signing attempt (default 60 s).
	SignTimeout time.Duration
	// PoolIdle is how long the signers must have had nothing to do before
	// pools are filled (default 1 s): back-to-back requests never wait
	// behind a presigning or a pooled key generation.
	PoolIdle time.Duration
	// QuorumWait is how long a signature waits for t signers to be online
	// before it fails (default 10 s; covers signers reconnecting after a
	// coordinator restart).
	QuorumWait time.Duration
	// OfflineGrace is how long a party of a running ceremony may be
	// disconnected before the attempt is given up (default 3 s).
	OfflineGrace time.Duration
	// MaxSignAttempts bounds the quorums tried for one signature, and the
	// attempts at a key generation whose replica died (default 4).
	MaxSignAttempts int
	// PresignPool is how many presignatures each active MPC wallet keeps
	// ready, made when the signers are idle (0: no pools; signatures run
	// the full protocol).
	PresignPool int
	// PresignPoolTotal bounds the ready presignatures across all wallets
	// (default DefaultPresignPoolTotal).
	PresignPoolTotal int
	// KeyPool is how many MPC keys of KeyPoolGroup are kept generated
	// ahead, unassigned, for CreateWallet to take (0: none).
	KeyPool      int
	KeyPoolGroup Group
	// PresignTimeout bounds one presigning (default 2 min).
	PresignTimeout time.Duration
	// Replica names this coordinator process among the replicas sharing
	// the database: the owner of its ceremony leases (default: host, pid
	// and a random suffix).
	Replica string
	// LeaseTTL is how long a ceremony lease and a signer heartbeat row
	// last unrenewed (default DefaultLeaseTTL); see replicas.go.
	LeaseTTL time.Duration
	// Heartbeat is the interval of stream heartbeats (default 15 s).
	Heartbeat time.Duration
	// SignerRoots verifies signer announcements (the node CA).
	SignerRoots *x509.CertPool
	// Disabled turns MPC off on this coordinator (no --mpc-signers): it
	// starts no ceremony and refuses signers, so a replica without MPC
	// never touches ceremonies another replica runs.
	Disabled bool
	// Now tells the time (default time.Now); tests give a fake clock.
	Now func() time.Time
	// Presence says which signers are online and reaches them (default:
	// the signers' WatchCeremonies streams); tests give a fake one.
	Presence Presence
	// Protocols maps (key scheme, ceremony kind) to its protocol (default
	// DefaultRegistry).
	Protocols *Registry
	// Settled, when set, is told the ids of the wallets and signatures a
	// ceremony's outcome changed, once that change is durable.
	Settled    func(ids ...string)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.KeygenTimeout == 0 {
		c.KeygenTimeout = 5 * time.Minute
	}
	if c.SignTimeout == 0 {
		c.SignTimeout = 60 * time.Second
	}
	if c.QuorumWait == 0 {
		c.QuorumWait = 10 * time.Second
	}
	if c.OfflineGrace == 0 {
		c.OfflineGrace = 3 * time.Second
	}
	if c.MaxSignAttempts == 0 {
		c.MaxSignAttempts = 4
	}
	if c.PresignPoolTotal == 0 {
		c.PresignPoolTotal = DefaultPresignPoolTotal
	}
	if c.PoolIdle == 0 {
		c.PoolIdle = time.Second
	}
	if c.PresignTimeout == 0 {
		c.PresignTimeout = 2 * time.Minute
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Replica == "" {
		c.Replica = ReplicaID("")
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Protocols == nil {
		c.Protocols = DefaultRegistry()
	}
}

// Group is an MPC signer group: t of these signers sign.
type Group struct {
	Threshold int
	Signers   []string
}

// Orchestrator drives every MPC ceremony of one coordinator.
type Orchestrator struct {
	store  Store
	cfg    Config
	logger *slog.Logger
	// streams are the signers' open WatchCeremonies streams; presence is
	// what decisions consult (streams unless a test injects another).
	streams  *streams
	presence Presence
	// shared is presence across replicas (nil when a test injects one).
	shared    *sharedPresence
	lastRenew time.Time
	// queued notes when each waiting ceremony was last held back by busy
	// signers (see schedule.go).
	qmu    sync.Mutex
	queued map[string]time.Time
	// hub wakes the relay's Receive streams of a ceremony when a message
	// for it arrives or it ends.
	hub     *settle.Hub
	metrics *metrics
	wake    chan struct{}
	now     func() time.Time

	// keyPool and presignPool are the pool targets (Config.KeyPool and
	// Config.PresignPool, changed by SetPoolSizes); busyAt is when a
	// ceremony other than a presigning was last seen open.
	keyPool, presignPool atomic.Int64
	busyAt               atomic.Int64
	// usePresigs is set once presignature pools were ever on: what they
	// hold is used even after filling stops.
	usePresigs atomic.Bool

	// mu serialises decisions about one ceremony's outcome, so a report and
	// a timeout never both finish it.
	mu sync.Mutex
}

// New returns an orchestrator; Run drives it.
func New(s Store, cfg Config) *Orchestrator {
	cfg.setDefaults()
	st := newStreams()
	var pr Presence
	var shared *sharedPresence
	if cfg.Presence != nil {
		pr = cfg.Presence
	} else {
		shared = &sharedPresence{local: st, replica: cfg.Replica, ttl: cfg.LeaseTTL, now: cfg.Now}
		pr = shared
	}
	o := &Orchestrator{
		store: s, cfg: cfg, logger: cfg.Logger, streams: st, presence: pr, shared: shared, hub: settle.New(),
		metrics: newMetrics(cfg.Registerer), wake: make(chan struct{}, 1), now: cfg.Now,
		queued: map[string]time.Time{},
	}
	o.SetPoolSizes(cfg.KeyPool, cfg.PresignPool)
	return o
}

// SetPoolSizes changes, at run time, how many keys the key pool keeps and
// how many presignatures each wallet keeps (0 stops filling that pool;
// what is already in it is still used).
func (o *Orchestrator) SetPoolSizes(keys, presignatures int) {
	o.keyPool.Store(int64(max(0, keys)))
	o.presignPool.Store(int64(max(0, presignatures)))
	if presignatures > 0 {
		o.usePresigs.Store(true)
	}
	o.NotifyWork()
}

// Online is how many signers have a ceremony stream open.
func (o *Orchestrator) Online() int { return o.streams.count() }

// NotifyWork wakes the orchestrator: a wallet or signature was requested.
func (o *Orchestrator) NotifyWork() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run drives ceremonies until ctx ends. Ceremonies left running by a
// replica that stopped (this process's predecessor included) are taken
// over once their lease expires; those of live replicas are left alone (see
// replicas.go). At the end Run lets this replica's leases lapse.
func (o *Orchestrator) Run(ctx context.Context) error {
	if o.cfg.Disabled {
		<-ctx.Done()
		return nil
	}
	o.logger.InfoContext(ctx, "MPC orchestrator running", "replica", o.cfg.Replica, "lease_ttl", o.cfg.LeaseTTL,
		"max_concurrent_ceremonies", o.cfg.MaxConcurrent)
	defer o.release()
	go o.listen(ctx)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := o.step(ctx); err != nil && ctx.Err() == nil {
			o.logger.ErrorContext(ctx, "ceremony step failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-o.wake:
		}
	}
}

// step looks at every open ceremony once.
func (o *Orchestrator) step(ctx context.Context) error {
	maintErr := o.maintain(ctx)
	open, err := o.store.OpenCeremonies(ctx)
	if err != nil {
		return errors.Join(maintErr, err)
	}
	o.metrics.online.Set(float64(o.streams.count()))
	errs := []error{maintErr}
	for _, c := range open {
		switch {
		case c.State != store.CeremonyRunning || o.runningElsewhere(c):
		case c.Lease.Expired(o.now()):
			errs = append(errs, o.takeOver(ctx, c))
		default:
			errs = append(errs, o.checkRunning(ctx, c))
		}
	}
	errs = append(errs, o.startWaiting(ctx, open)...)
	if o.shared != nil {
		errs = append(errs, o.syncStreams(ctx, open))
	}
	// Idle signers make keys for the key pool first, then presignatures.
	if !o.idle(open) {
		return errors.Join(errs...)
	}
	started, err := o.fillKeyPool(ctx, open)
	errs = append(errs, err)
	if !started && err == nil {
		errs = append(errs, o.fillPools(ctx, open))
	}
	return errors.Join(errs...)
}

// tryStart plans a waiting ceremony with the online signers that have room
// for it (see schedule.go). One that cannot start only because signers are
// busy is queued: it neither starts nor fails, and holds its signers
// against the ceremonies behind it.
func (o *Orchestrator) tryStart(ctx context.Context, c *store.Ceremony, sched *schedule) error {
	p, err := o.cfg.Protocols.Lookup(c)
	if err != nil {
		return err
	}
	now := o.now()
	online := o.presence.Online(c.GroupSigners)
	free := sched.free(online)
	plan := p.Plan(PlanEnv{Now: now, Since: o.queuedSince(c), Online: free, Config: &o.cfg,
		Presignature: o.takePresignature(ctx, c)}, c)
	switch {
	case len(plan.Parties) > 0:
		c.PresignatureID = plan.Presignature
		sched.started(plan.Parties)
		return o.start(ctx, c, plan.Parties, plan.Deadline)
	case len(free) < len(online):
		o.markQueued(c, now)
		sched.hold(online)
	case plan.Fail != "":
		return o.finish(ctx, c, p.Failed(c, plan.Fail, false))
	}
	return nil
}

// checkRunning ends a running ceremony that passed its deadline or lost a
// party (that had not reported yet) for longer than the grace period.
func (o *Orchestrator) checkRunning(ctx context.Context, c *store.Ceremony) error {
	now := o.now()
	var down []string
	for _, p := range c.Parties {
		if since, off := o.presence.OfflineSince(p); off && (since.IsZero() || now.Sub(since) > o.cfg.OfflineGrace) {
			down = append(down, p)
		}
	}
	if len(down) == 0 && !now.After(c.Deadline) {
		return nil
	}
	reports, err := o.store.Reports(ctx, c.ID)
	if err != nil {
		return err
	}
	// All results may be in while finishing failed (a database error):
	// decide on them now rather than call it a timeout.
	if len(reports) == len(c.Parties) {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.decideLocked(ctx, c)
	}
	// A party that already reported its result may leave.
	down = without(down, reporters(reports))
	if len(down) > 0 {
		return o.failAttempt(ctx, c, fmt.Sprintf("%s disconnected during the ceremony", strings.Join(down, ", ")), down)
	}
	if now.After(c.Deadline) {
		silent := without(c.Parties, reporters(reports))
		return o.failAttempt(ctx, c, fmt.Sprintf("timed out with no result from %s", listOrNone(silent)), silent)
	}
	return nil
}

// rotate returns list starting at its (k mod len)-th element.
func rotate(list []string, k int) []string {
	if len(list) == 0 {
		return list
	}
	k %= len(list)
	return append(append([]string(nil), list[k:]...), list[:k]...)
}

// start records the parties and hands the ceremony to them.
func (o *Orchestrator) start(ctx context.Context, c *store.Ceremony, parties []string, deadline time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	peers, ok := o.presence.Announcements(parties)
	if !ok {
		return nil // a party left since we looked; try again next step
	}
	now := o.now()
	lease, err := o.store.StartLeased(ctx, c.ID, parties, deadline, o.cfg.Replica, now.Add(o.cfg.LeaseTTL), o.cfg.MaxConcurrent)
	if err != nil {
		if errors.Is(err, store.ErrStateConflict) || errors.Is(err, store.ErrSignerBusy) {
			return nil // another replica started it, or took the signers first: next step
		}
		return err
	}
	c.State, c.Parties, c.Deadline, c.Lease = store.CeremonyRunning, parties, deadline, lease
	msg, err := o.toProto(ctx, c, peers)
	if err != nil {
		o.logger.ErrorContext(ctx, "prepare ceremony", "ceremony", c.ID, "error", err)
		return o.failAttemptLocked(ctx, c, "internal error preparing the ceremony", nil)
	}
	o.metrics.started.WithLabelValues(string(c.Kind)).Inc()
	o.wakeOthers(ctx, wakeCeremony, c.ID)
	o.logger.InfoContext(ctx, "ceremony started", "ceremony", c.ID, "kind", c.Kind, "wallet", c.WalletID,
		"signature", c.SignatureID, "parties", parties, "attempt", c.Attempt)
	o.presence.Send(parties, event(msg))
	return nil
}

// failAttempt ends a running attempt. A signature gets another quorum
// without the faulty signers while attempts remain; a key generation fails.
func (o *Orchestrator) failAttempt(ctx context.Context, c *store.Ceremony, reason string, faulty []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failAttemptLocked(ctx, c, reason, faulty)
}

// failAttemptLocked is failAttempt with o.mu held.
func (o *Orchestrator) failAttemptLocked(ctx context.Context, c *store.Ceremony, reason string, faulty []string) error {
	p, err := o.cfg.Protocols.Lookup(c)
	if err != nil {
		return err
	}
	if !p.Retries() {
		return o.finishLocked(ctx, c, p.Failed(c, p.Name()+" failed: "+reason, false))
	}
	if c.Attempt+1 >= o.cfg.MaxSignAttempts {
		return o.finishLocked(ctx, c, p.Failed(c, fmt.Sprintf("%s failed after %d attempts; last: %s", p.Name(), c.Attempt+1, reason), false))
	}
	excluded := o.exclude(c, faulty)
	o.dropPresignatures(ctx, c, without(excluded, c.Excluded))
	o.metrics.retries.Inc()
	o.logger.WarnContext(ctx, "attempt failed; retrying with another quorum", "ceremony", c.ID, "kind", c.Kind,
		"signature", c.SignatureID, "reason", reason, "excluded", excluded)
	return o.finishLocked(ctx, c, &store.CeremonyFinish{State: store.CeremonyFailed, Reason: reason,
		Retry: &store.Ceremony{ID: ids.New(ids.Ceremony), Attempt: c.Attempt + 1, Excluded: excluded}})
}

// exclude returns who the next attempt leaves out: the earlier exclusions
// and the faulty signers of this one.
func (o *Orchestrator) exclude(c *store.Ceremony, faulty []string) []string {
	excluded := union(c.Excluded, faulty)
	if len(without(c.GroupSigners, excluded)) < c.Threshold {
		// Blaming all of them would leave no quorum: keep the earlier
		// exclusions and let rotation pick another set.
		excluded = c.Excluded
	}
	return excluded
}

func (o *Orchestrator) finish(ctx context.Context, c *store.Ceremony, f *store.CeremonyFinish) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.finishLocked(ctx, c, f)
}

// finishLocked ends c; o.mu must be held.
func (o *Orchestrator) finishLocked(ctx context.Context, c *store.Ceremony, f *store.CeremonyFinish) error {
	f.CeremonyID = c.ID
	if c.State == store.CeremonyRunning {
		lease := c.Lease
		f.Lease = &lease // fenced: see replicas.go
	}
	if err := o.store.FinishCeremony(ctx, f); err != nil {
		if errors.Is(err, store.ErrStateConflict) {
			return nil // someone else ended it first
		}
		return err
	}
	o.metrics.ended.WithLabelValues(string(c.Kind), string(f.State)).Inc()
	if !c.Deadline.IsZero() && c.State == store.CeremonyRunning {
		o.metrics.duration.WithLabelValues(string(c.Kind), string(f.State)).Observe(o.now().Sub(c.UpdatedAt).Seconds())
	}
	level := slog.LevelInfo
	if f.State == store.CeremonyFailed {
		level = slog.LevelWarn
	}
	o.logger.Log(ctx, level, "ceremony ended", "ceremony", c.ID, "kind", c.Kind, "state", f.State, "reason", f.Reason,
		"wallet", c.WalletID, "signature", c.SignatureID)
	o.presence.Send(c.Parties, ended(c.ID, f.State))
	o.hub.Notify(c.ID)
	o.wakeOthers(ctx, wakeCeremony, c.ID)
	o.settled(ctx, c, f)
	if f.Retry != nil {
		o.NotifyWork()
	}
	return nil
}

// idle reports whether the signers have had nothing to do but presign
// for Config.PoolIdle.
func (o *Orchestrator) idle(open []*store.Ceremony) bool {
	now := o.now()
	for _, c := range open {
		if c.Kind != store.CeremonyPresign {
			o.busyAt.Store(now.UnixNano())
			return false
		}
	}
	return now.Sub(time.Unix(0, o.busyAt.Load())) >= o.cfg.PoolIdle
}

// settled tells waiting callers about the wallet or signature f changed.
func (o *Orchestrator) settled(ctx context.Context, c *store.Ceremony, f *store.CeremonyFinish) {
	var ids []string
	if f.Wallet != nil {
		ids = append(ids, c.WalletID)
	}
	if f.Signature != nil {
		ids = append(ids, c.SignatureID)
	}
	if len(ids) > 0 && o.cfg.Settled != nil {
		o.cfg.Settled(ids...)
	}
	o.wakeOthers(ctx, wakeSettled, ids...) // callers waiting on other replicas
}

func reporters(rs []*store.CeremonyReport) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Signer
	}
	return out
}

// without returns the names of list not in drop, in list order.
func without(list, drop []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
