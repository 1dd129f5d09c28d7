package mpc

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/taurusgroup/multi-party-sig/pkg/party"
)

// ErrNetworkClosed is returned by a ChanNetwork transport after Close.
var ErrNetworkClosed = errors.New("mpc: channel network closed")

// ChanNetwork connects parties of one process over in-memory queues. It
// exists for tests and benchmarks; it provides no security.
//
// Queues are unbounded: with bounded channels, two parties each blocked
// sending to the other while their accept loops wait on the library's
// output channel could deadlock, which a real relay (that stores messages)
// never does.
type ChanNetwork struct {
	mu        sync.Mutex
	endpoints map[party.ID]*chanEndpoint
	closed    chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

// NewChanNetwork creates a network with one endpoint per id.
func NewChanNetwork(ids []party.ID) *ChanNetwork {
	n := &ChanNetwork{
		endpoints: make(map[party.ID]*chanEndpoint, len(ids)),
		closed:    make(chan struct{}),
	}
	for _, id := range ids {
		e := &chanEndpoint{
			net:    n,
			id:     id,
			notify: make(chan struct{}, 1),
			out:    make(chan Packet),
		}
		n.endpoints[id] = e
		n.wg.Add(1)
		go e.pump()
	}
	return n
}

// Transport returns the endpoint of id, or nil if id is not in the network.
func (n *ChanNetwork) Transport(id party.ID) Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.endpoints[id]
	if !ok {
		return nil
	}
	return e
}

// Close stops delivery, closes every Incoming channel and waits for the
// delivery goroutines to exit. It is safe to call more than once.
func (n *ChanNetwork) Close() {
	n.once.Do(func() { close(n.closed) })
	n.wg.Wait()
}

type chanEndpoint struct {
	net    *ChanNetwork
	id     party.ID
	mu     sync.Mutex
	queue  []Packet
	notify chan struct{}
	out    chan Packet
}

func (e *chanEndpoint) Incoming() <-chan Packet { return e.out }

func (e *chanEndpoint) Send(ctx context.Context, to party.ID, data []byte) error {
	select {
	case <-e.net.closed:
		return ErrNetworkClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	e.net.mu.Lock()
	dst, ok := e.net.endpoints[to]
	e.net.mu.Unlock()
	if !ok {
		return fmt.Errorf("mpc: unknown party %q", to)
	}
	dst.enqueue(Packet{From: e.id, Data: append([]byte(nil), data...)})
	return nil
}

func (e *chanEndpoint) enqueue(p Packet) {
	e.mu.Lock()
	e.queue = append(e.queue, p)
	e.mu.Unlock()
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// pump moves queued packets to the Incoming channel in order.
func (e *chanEndpoint) pump() {
	defer e.net.wg.Done()
	defer close(e.out)
	for {
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.mu.Unlock()
			select {
			case <-e.notify:
				continue
			case <-e.net.closed:
				return
			}
		}
		p := e.queue[0]
		e.queue[0] = Packet{}
		e.queue = e.queue[1:]
		e.mu.Unlock()
		select {
		case e.out <- p:
		case <-e.net.closed:
			return
		}
	}
}
