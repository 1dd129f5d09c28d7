package mpc_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/taurusgroup/multi-party-sig/pkg/party"

	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// countingTransport counts what its party sends: messages (one per
// recipient, as the relay stores them) and payload bytes, and the largest.
type countingTransport struct {
	mpc.Transport
	mu          sync.Mutex
	msgs, bytes int
	largest     int
}

func (c *countingTransport) Send(ctx context.Context, to party.ID, data []byte) error {
	c.mu.Lock()
	c.msgs++
	c.bytes += len(data)
	c.largest = max(c.largest, len(data))
	c.mu.Unlock()
	return c.Transport.Send(ctx, to, data)
}

// reportTraffic reports the busiest party's relay traffic, which is what
// the coordinator's relay quota (server/ceremony/quota.go) must allow.
func reportTraffic(b *testing.B, counters map[party.ID]*countingTransport) {
	var msgs, bytes, largest int
	for _, c := range counters {
		msgs, bytes, largest = max(msgs, c.msgs), max(bytes, c.bytes), max(largest, c.largest)
	}
	b.ReportMetric(float64(msgs), "msgs/party")
	b.ReportMetric(float64(bytes), "bytes/party")
	b.ReportMetric(float64(largest), "largest-msg-bytes")
}

// BenchmarkRelayTrafficSign measures how many relayed messages and bytes
// each party of a CMP signature sends (payloads before sealing). Run with
// -benchtime=1x; the figures are per ceremony.
func BenchmarkRelayTrafficSign(b *testing.B) {
	for _, shape := range []struct{ n, t int }{{3, 2}, {3, 3}, {5, 3}, {5, 5}} {
		b.Run(fmt.Sprintf("%dof%d", shape.t, shape.n), func(b *testing.B) {
			cfgs := mpctest.Configs(b, shape.n, shape.n/2+1) // the 2-of-3 and 3-of-5 fixtures
			signers := mpctest.IDs(shape.n)[:shape.t]
			var r mpc.Runner
			for i := range b.N {
				counters := map[party.ID]*countingTransport{}
				digest := sha256.Sum256(fmt.Appendf(nil, "traffic %d", i))
				res := signAll(context.Background(), &r, cfgs, signers, digest[:], func(id party.ID, tr mpc.Transport) mpc.Transport {
					c := &countingTransport{Transport: tr}
					counters[id] = c
					return c
				})
				for id, res := range res {
					if res.err != nil {
						b.Fatalf("%s: %v", id, res.err)
					}
				}
				reportTraffic(b, counters)
			}
		})
	}
}

// BenchmarkRelayTrafficKeygen is BenchmarkRelayTrafficSign for a CMP key
// generation. Each iteration is a real keygen: tens of seconds.
func BenchmarkRelayTrafficKeygen(b *testing.B) {
	for _, shape := range []struct{ n, t int }{{3, 2}, {5, 3}} {
		b.Run(fmt.Sprintf("%dof%d", shape.t, shape.n), func(b *testing.B) {
			ids := mpctest.IDs(shape.n)
			for range b.N {
				network := mpc.NewChanNetwork(ids)
				sid := make([]byte, 32)
				_, _ = rand.Read(sid)
				var wg sync.WaitGroup
				counters := map[party.ID]*countingTransport{}
				errs := make([]error, len(ids))
				for i, id := range ids {
					c := &countingTransport{Transport: network.Transport(id)}
					counters[id] = c
					wg.Go(func() {
						var r mpc.Runner
						_, errs[i] = r.Keygen(context.Background(), sid, id, ids, shape.t, c)
					})
				}
				wg.Wait()
				network.Close()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				reportTraffic(b, counters)
			}
		})
	}
}
