package jobs

import (
	"sync"
	"time"

	"github.com/sigil-wallet/sigil/server/store"
)

// maxHeld bounds the claims a queue remembers: far more jobs than the
// drivers of one replica hold at once (64 each by default).
const maxHeld = 8192

// held remembers the jobs this replica leased, as it claimed them, until
// their results come back: checking a result needs what the job was
// claimed with (its kind, its driver, the digest and the wallet's key),
// none of which changes while the lease lasts, so a result reported to
// the replica that claimed its job within the first lease needs no read of
// the database. Whether the lease still holds is decided anyway when the
// result is recorded, under lock. A result reported elsewhere, or after
// the first lease (renewals are not followed here), is checked against the
// database as before.
type held struct {
	mu   sync.Mutex
	jobs map[string]*store.ClaimedJob // by job id
}

// add remembers jobs just claimed; when full, it first forgets the leases
// that have lapsed, and remembers nothing if that frees no room.
func (h *held) add(jobs []*store.ClaimedJob, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.jobs == nil {
		h.jobs = make(map[string]*store.ClaimedJob)
	}
	if len(h.jobs)+len(jobs) > maxHeld {
		for id, cj := range h.jobs {
			if !now.Before(cj.LeaseExpiresAt) {
				delete(h.jobs, id)
			}
		}
		if len(h.jobs)+len(jobs) > maxHeld {
			return
		}
	}
	for _, cj := range jobs {
		c := *cj
		// The request itself (its message, its signed request) went to
		// the driver and is not needed to check a result: kept, it would
		// make the memory's size depend on what requesters send.
		c.Signature = nil
		h.jobs[cj.ID] = &c
	}
}

// get returns a copy of the job claimed under lease, if it is remembered
// and its first lease has not run out at now.
func (h *held) get(lease store.JobLease, now time.Time) (*store.ClaimedJob, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cj, ok := h.jobs[lease.JobID]
	if !ok || cj.LeaseID != lease.LeaseID || !now.Before(cj.LeaseExpiresAt) {
		return nil, false
	}
	c := *cj
	return &c, true
}

// forget drops jobs whose results were reported.
func (h *held) forget(jobIDs ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range jobIDs {
		delete(h.jobs, id)
	}
}
