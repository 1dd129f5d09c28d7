// Package settle wakes callers waiting for a wallet or a signature request
// to settle. Whoever applies an outcome (the MPC orchestrator, the HSM job
// queue) calls Notify with the ids it changed; a waiting GetWallet or
// GetSignature holds a subscription and reads the row again when woken, so
// it answers the moment the outcome is durable, with no periodic scan.
package settle

import "sync"

// Hub is an in-process broadcast per id. The zero value is not usable:
// call New.
type Hub struct {
	mu    sync.Mutex
	waits map[string]*wait
}

type wait struct {
	ch   chan struct{}
	refs int
}

// New returns an empty hub.
func New() *Hub { return &Hub{waits: map[string]*wait{}} }

// Subscribe returns a channel closed at the next Notify of id, and a
// release function the caller must call when it stops waiting. Subscribe
// before reading the row: an outcome applied between the read and the wait
// then still wakes the caller.
func (h *Hub) Subscribe(id string) (<-chan struct{}, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := h.waits[id]
	if !ok {
		w = &wait{ch: make(chan struct{})}
		h.waits[id] = w
	}
	w.refs++
	var once sync.Once
	return w.ch, func() { once.Do(func() { h.release(id, w) }) }
}

func (h *Hub) release(id string, w *wait) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w.refs--
	if w.refs == 0 && h.waits[id] == w {
		delete(h.waits, id)
	}
}

// Notify wakes every subscriber of the given ids. Empty ids are ignored.
func (h *Hub) Notify(ids ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if w, ok := h.waits[id]; ok {
			close(w.ch)
			delete(h.waits, id)
		}
	}
}

// Len is how many ids have subscribers (for tests and metrics).
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waits)
}
