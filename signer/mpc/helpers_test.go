package mpc_test

import (
	"context"
	"sync"
	"testing"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/signer/mpc"
)

type signResult struct {
	sig *ecdsa.Signature
	err error
}

// signAll runs Sign for every signer concurrently. wrap, if not nil, may
// replace a party's transport.
func signAll(ctx context.Context, r *mpc.Runner, cfgs map[party.ID]*cmp.Config, signers []party.ID, digest []byte, wrap func(party.ID, mpc.Transport) mpc.Transport) map[party.ID]signResult {
	network := mpc.NewChanNetwork(signers)
	defer network.Close()
	sid := []byte("session:" + string(digest))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[party.ID]signResult, len(signers))
	)
	for _, id := range signers {
		tr := network.Transport(id)
		if wrap != nil {
			tr = wrap(id, tr)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig, err := r.Sign(ctx, sid, cfgs[id], signers, digest, tr)
			mu.Lock()
			out[id] = signResult{sig, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// dropTransport discards everything its party sends.
type dropTransport struct{ mpc.Transport }

func (dropTransport) Send(context.Context, party.ID, []byte) error { return nil }

// injectTransport delivers extra packets before the real ones.
type injectTransport struct {
	mpc.Transport
	in chan mpc.Packet
}

func newInjectTransport(tr mpc.Transport, extra []mpc.Packet) *injectTransport {
	t := &injectTransport{Transport: tr, in: make(chan mpc.Packet)}
	go func() {
		defer close(t.in)
		for _, p := range extra {
			t.in <- p
		}
		for p := range tr.Incoming() {
			t.in <- p
		}
	}()
	return t
}

func (t *injectTransport) Incoming() <-chan mpc.Packet { return t.in }

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs an MPC ceremony (seconds); skipped with -short")
	}
}
