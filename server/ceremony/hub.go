package ceremony

import "sync"

// hub wakes the relay's Receive streams of a ceremony when a message for it
// arrives or the ceremony ends. Each wait gets a channel that is closed on
// the next notify: a broadcast without per-subscriber bookkeeping.
type hub struct {
	mu    sync.Mutex
	waits map[string]chan struct{}
}

func newHub() *hub { return &hub{waits: map[string]chan struct{}{}} }

// wait returns a channel closed at the next notify of ceremonyID.
func (h *hub) wait(ceremonyID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.waits[ceremonyID]
	if !ok {
		ch = make(chan struct{})
		h.waits[ceremonyID] = ch
	}
	return ch
}

func (h *hub) notify(ceremonyID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.waits[ceremonyID]; ok {
		close(ch)
		delete(h.waits, ceremonyID)
	}
}

// drop forgets a ceremony's wake channel once its stream is done, so ended
// ceremonies leave nothing behind. A stream still waiting on the dropped
// channel falls back to its poll.
func (h *hub) drop(ceremonyID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waits, ceremonyID)
}
