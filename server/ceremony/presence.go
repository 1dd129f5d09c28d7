package ceremony

import (
	"sync"
	"time"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
)

// Presence is what the orchestrator asks of the signers' connections: who
// is online, since when someone is not, their announcements, and a way to
// hand them events. The signers' streams provide it; tests give a fake.
type Presence interface {
	// Online returns the names among candidates that are online, in the
	// order of candidates.
	Online(candidates []string) []string
	// OfflineSince reports whether name is offline and since when (zero
	// time when it has not been seen since the coordinator started).
	OfflineSince(name string) (time.Time, bool)
	// Announcements returns the current announcement of each name; ok is
	// false when one of them is offline.
	Announcements(names []string) ([]*ceremonyv1.PeerAnnouncement, bool)
	// Send queues an event for each named signer that is online.
	Send(names []string, ev *ceremonyv1.WatchCeremoniesResponse)
}

// streams tracks which signers have a ceremony stream open, with the
// announcement each sent and the channel its stream reads events from.
type streams struct {
	mu      sync.Mutex
	signers map[string]*signerConn
	// gone remembers when a signer's last stream closed, so a running
	// ceremony can tell a blip from a signer that is really down.
	gone map[string]time.Time
	seq  uint64
}

type signerConn struct {
	name         string
	announcement []byte
	events       chan *ceremonyv1.WatchCeremoniesResponse
	id           uint64
	since        time.Time
	closed       chan struct{} // closed when a newer stream replaces this one
	// sent are the running ceremonies this stream was handed (and not
	// told the end of yet); guarded by streams.mu.
	sent map[string]bool
}

func newStreams() *streams {
	return &streams{signers: map[string]*signerConn{}, gone: map[string]time.Time{}}
}

// join registers a new stream for name, replacing (and closing) an older
// one: a signer process has one ceremony stream.
func (p *streams) join(name string, announcement []byte, now time.Time) *signerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.signers[name]; ok {
		close(old.closed)
	}
	p.seq++
	c := &signerConn{
		name: name, announcement: announcement, id: p.seq, since: now,
		events: make(chan *ceremonyv1.WatchCeremoniesResponse, 256), closed: make(chan struct{}),
		sent: map[string]bool{},
	}
	p.signers[name] = c
	delete(p.gone, name)
	return c
}

// leave unregisters c unless a newer stream already replaced it.
func (p *streams) leave(c *signerConn, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.signers[c.name]; ok && cur.id == c.id {
		delete(p.signers, c.name)
		p.gone[c.name] = now
	}
}

// Online returns the names among candidates that have a stream open, in
// the order of candidates.
func (p *streams) Online(candidates []string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, n := range candidates {
		if _, ok := p.signers[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// OfflineSince reports whether name has no stream open and since when
// (zero time when it has not been seen since the coordinator started).
func (p *streams) OfflineSince(name string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.signers[name]; ok {
		return time.Time{}, false
	}
	return p.gone[name], true
}

// Announcements returns the current announcement of each name; ok is false
// when one of them is offline.
func (p *streams) Announcements(names []string) ([]*ceremonyv1.PeerAnnouncement, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*ceremonyv1.PeerAnnouncement, 0, len(names))
	for _, n := range names {
		c, ok := p.signers[n]
		if !ok {
			return nil, false
		}
		out = append(out, &ceremonyv1.PeerAnnouncement{Signer: n, Announcement: c.announcement})
	}
	return out, true
}

// Send queues an event for each named signer that is online. A full queue
// drops the event: the signer gets running ceremonies again when it
// reconnects, and a stalled ceremony times out.
func (p *streams) Send(names []string, ev *ceremonyv1.WatchCeremoniesResponse) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range names {
		if c, ok := p.signers[n]; ok {
			p.sendLocked(c, ev)
		}
	}
}

// sendLocked queues ev on c and notes which ceremonies c was handed.
func (p *streams) sendLocked(c *signerConn, ev *ceremonyv1.WatchCeremoniesResponse) {
	select {
	case c.events <- ev:
	default:
		return
	}
	if cer := ev.GetCeremony(); cer != nil {
		c.sent[cer.GetId()] = true
	}
	if e := ev.GetEnded(); e != nil {
		delete(c.sent, e.GetCeremonyId())
	}
}

// sendTo queues ev on c if c is still registered.
func (p *streams) sendTo(c *signerConn, ev *ceremonyv1.WatchCeremoniesResponse) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.signers[c.name]; ok && cur.id == c.id {
		p.sendLocked(c, ev)
	}
}

// markSent notes that c was handed ceremony id directly.
func (p *streams) markSent(c *signerConn, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.sent[id] = true
}

func (p *streams) wasSent(c *signerConn, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.sent[id]
}

func (p *streams) sentIDs(c *signerConn) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(c.sent))
	for id := range c.sent {
		out = append(out, id)
	}
	return out
}

// all returns the open streams.
func (p *streams) all() []*signerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*signerConn, 0, len(p.signers))
	for _, c := range p.signers {
		out = append(out, c)
	}
	return out
}

// count returns how many signers are online.
func (p *streams) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.signers)
}
