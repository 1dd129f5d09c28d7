package ceremony

import (
	"context"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/sigil-wallet/sigil/server/store"
)

// DefaultMaxConcurrent is how many ceremonies one signer runs at once by
// default: one per CPU of this machine (at least 2). A CMP key generation
// keeps a core busy for tens of seconds; signers started all at once on
// every ceremony requested only time out together.
var DefaultMaxConcurrent = max(2, runtime.NumCPU())

// The scheduler starts waiting ceremonies in order of priority, then of
// request (first come, first served), and never gives a signer more than
// MaxConcurrent running ceremonies (counted across all replicas, from the
// database). A ceremony that cannot start because its signers are busy is
// queued: it keeps its place, the signers it waits for are held for it
// against the ceremonies behind it, and the time it spends queued does not
// count against its timeouts (its deadline is set when it starts; the
// quorum wait restarts when it leaves the queue).

// priority orders waiting ceremonies: signatures, then key generations,
// then background work (presignatures for the pools).
func priority(k store.CeremonyKind) int {
	switch k {
	case store.CeremonySign:
		return 0
	case store.CeremonyKeygen:
		return 1
	default:
		return 2
	}
}

// schedule is one step's view of who is busy.
type schedule struct {
	max  int
	busy map[string]int
	// held are the signers a queued ceremony ahead waits for.
	held map[string]bool
}

func newSchedule(maxConcurrent int, open []*store.Ceremony) *schedule {
	s := &schedule{max: maxConcurrent, busy: map[string]int{}, held: map[string]bool{}}
	for _, c := range open {
		if c.State == store.CeremonyRunning {
			for _, p := range c.Parties {
				s.busy[p]++
			}
		}
	}
	return s
}

// free returns the signers of online that may take one more ceremony.
func (s *schedule) free(online []string) []string {
	var out []string
	for _, n := range online {
		if s.busy[n] < s.max && !s.held[n] {
			out = append(out, n)
		}
	}
	return out
}

func (s *schedule) started(parties []string) {
	for _, p := range parties {
		s.busy[p]++
	}
}

func (s *schedule) hold(names []string) {
	for _, n := range names {
		s.held[n] = true
	}
}

// waitingInOrder returns the waiting ceremonies of open in the order they
// are considered.
func waitingInOrder(open []*store.Ceremony) []*store.Ceremony {
	var out []*store.Ceremony
	for _, c := range open {
		if c.State == store.CeremonyWaiting {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		pi, pj := priority(out[i].Kind), priority(out[j].Kind)
		if pi != pj {
			return pi < pj
		}
		return out[i].Seq < out[j].Seq
	})
	return out
}

// queuedSince returns when c last left the queue (its request time if it
// was never queued here): the start of the waits its protocol times.
func (o *Orchestrator) queuedSince(c *store.Ceremony) time.Time {
	o.qmu.Lock()
	defer o.qmu.Unlock()
	if t, ok := o.queued[c.ID]; ok && t.After(c.CreatedAt) {
		return t
	}
	return c.CreatedAt
}

// markQueued notes that c waits for busy signers at now.
func (o *Orchestrator) markQueued(c *store.Ceremony, now time.Time) {
	o.qmu.Lock()
	defer o.qmu.Unlock()
	o.queued[c.ID] = now
}

// forgetQueued drops what is known of ceremonies no longer waiting.
func (o *Orchestrator) forgetQueued(open []*store.Ceremony) {
	o.qmu.Lock()
	defer o.qmu.Unlock()
	for id := range o.queued {
		if !slices.ContainsFunc(open, func(c *store.Ceremony) bool { return c.ID == id && c.State == store.CeremonyWaiting }) {
			delete(o.queued, id)
		}
	}
	o.metrics.queued.Set(float64(len(o.queued)))
}

// startWaiting plans the waiting ceremonies of open in order, within the
// signers' capacity.
func (o *Orchestrator) startWaiting(ctx context.Context, open []*store.Ceremony) []error {
	sched := newSchedule(o.cfg.MaxConcurrent, open)
	var errs []error
	for _, c := range waitingInOrder(open) {
		errs = append(errs, o.tryStart(ctx, c, sched))
	}
	o.forgetQueued(open)
	return errs
}
