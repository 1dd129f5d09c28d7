package jobs

import (
	"fmt"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/server/store"
)

// TestHeldStaysBounded: a full memory of claims makes room by forgetting
// lapsed leases, and remembers nothing more while every lease still holds.
func TestHeldStaysBounded(t *testing.T) {
	now := time.Now()
	job := func(i int, expires time.Time) *store.ClaimedJob {
		return &store.ClaimedJob{Job: store.Job{ID: fmt.Sprint("job-", i), LeaseID: fmt.Sprint("lease-", i), LeaseExpiresAt: expires}}
	}
	var h held
	var batch []*store.ClaimedJob
	for i := range maxHeld {
		expires := now.Add(time.Minute)
		if i%2 == 0 {
			expires = now.Add(time.Second) // lapses first
		}
		batch = append(batch, job(i, expires))
	}
	h.add(batch, now)
	if len(h.jobs) != maxHeld {
		t.Fatalf("remembered %d claims, want %d", len(h.jobs), maxHeld)
	}
	// Full, and nothing lapsed: the new claim is not remembered.
	h.add([]*store.ClaimedJob{job(-1, now.Add(time.Minute))}, now)
	if _, ok := h.get(store.JobLease{JobID: "job--1", LeaseID: "lease--1"}, now); ok || len(h.jobs) != maxHeld {
		t.Fatalf("a full memory took another claim (%d remembered)", len(h.jobs))
	}
	// Later the even leases lapsed: they make room.
	later := now.Add(2 * time.Second)
	h.add([]*store.ClaimedJob{job(-2, later.Add(time.Minute))}, later)
	if _, ok := h.get(store.JobLease{JobID: "job--2", LeaseID: "lease--2"}, later); !ok || len(h.jobs) != maxHeld/2+1 {
		t.Fatalf("after the lapsed leases went: %d remembered, want %d with the new claim", len(h.jobs), maxHeld/2+1)
	}
	if _, ok := h.get(store.JobLease{JobID: "job-1", LeaseID: "lease-1"}, later); !ok {
		t.Fatal("a claim whose lease still holds was forgotten")
	}
}
