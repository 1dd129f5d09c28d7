package mpc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// batchCounter is a transport that takes batches, counting the calls and
// the messages they carry.
type batchCounter struct {
	mpc.Transport
	calls, msgs *atomic.Int64
}

func (b batchCounter) SendBatch(ctx context.Context, msgs []mpc.Outgoing) error {
	b.calls.Add(1)
	b.msgs.Add(int64(len(msgs)))
	for _, m := range msgs {
		if err := b.Transport.Send(ctx, m.To, m.Data); err != nil {
			return err
		}
	}
	return nil
}

// runAll runs fn for each signer concurrently over one network.
func runAll[T any](signers []party.ID, wrap func(mpc.Transport) mpc.Transport, fn func(party.ID, mpc.Transport) (T, error)) (map[party.ID]T, map[party.ID]error) {
	network := mpc.NewChanNetwork(signers)
	defer network.Close()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  = map[party.ID]T{}
		errs = map[party.ID]error{}
	)
	for _, id := range signers {
		tr := network.Transport(id)
		if wrap != nil {
			tr = wrap(tr)
		}
		wg.Go(func() {
			v, err := fn(id, tr)
			mu.Lock()
			defer mu.Unlock()
			out[id], errs[id] = v, err
		})
	}
	wg.Wait()
	return out, errs
}

// TestPresignThenOnline presigns with a quorum of the 2-of-3 fixture key,
// stores and reloads the presignatures as the signer does, and signs in one
// round; go-ethereum recovers the key's address from the result. It also
// checks a round's messages leave in one batch.
func TestPresignThenOnline(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfgs := mpctest.Configs(t, 3, 2)
	ids := mpctest.IDs(3)
	signers := []party.ID{ids[0], ids[2]}
	r := &mpc.Runner{}
	var calls, msgs atomic.Int64
	batched := func(tr mpc.Transport) mpc.Transport { return batchCounter{tr, &calls, &msgs} }
	pres, errs := runAll(signers, batched, func(id party.ID, tr mpc.Transport) (*ecdsa.PreSignature, error) {
		return r.Presign(ctx, []byte("presign-1"), cfgs[id], signers, tr)
	})
	for id, err := range errs {
		if err != nil {
			t.Fatalf("%s: presign: %v", id, err)
		}
	}
	if calls.Load() >= msgs.Load() {
		t.Fatalf("%d send calls for %d messages: a round's messages were not batched", calls.Load(), msgs.Load())
	}
	r0, _ := mpc.PresignatureR(pres[signers[0]])
	r1, _ := mpc.PresignatureR(pres[signers[1]])
	if !slices.Equal(r0, r1) {
		t.Fatal("the signers disagree on the presignature's R")
	}
	// Stored and loaded as the signer does.
	for id, pre := range pres {
		b, err := mpc.MarshalPresignature(pre)
		if err != nil {
			t.Fatal(err)
		}
		if pres[id], err = mpc.UnmarshalPresignature(b); err != nil {
			t.Fatal(err)
		}
	}
	pub, _ := mpc.PublicKey(cfgs[ids[0]])
	digest := sha256.Sum256([]byte("online"))
	sigs, errs := runAll(signers, nil, func(id party.ID, tr mpc.Transport) (*ecdsa.Signature, error) {
		return r.PresignOnline(ctx, []byte("online-1"), cfgs[id], pres[id], digest[:], tr)
	})
	for id, err := range errs {
		if err != nil {
			t.Fatalf("%s: online: %v", id, err)
		}
		sig, err := mpc.ToSignature(sigs[id], pub, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := ethtest.VerifyHash(pub, digest[:], sig.R[:], sig.S[:]); err != nil {
			t.Fatalf("go-ethereum refuses the online signature: %v", err)
		}
	}

	t.Run("a bad online share is named", func(t *testing.T) {
		// The second signer's share is computed from a corrupted nonce
		// share: the first must blame it, not itself.
		bad := signers[1]
		b, _ := mpc.MarshalPresignature(pres[bad])
		tampered, _ := mpc.UnmarshalPresignature(b)
		tampered.KShare.Add(tampered.KShare)
		pres[bad] = tampered
		other := sha256.Sum256([]byte("other"))
		_, errs := runAll(signers, nil, func(id party.ID, tr mpc.Transport) (*ecdsa.Signature, error) {
			return r.PresignOnline(ctx, []byte("online-2"), cfgs[id], pres[id], other[:], tr)
		})
		var abort *mpc.AbortError
		if !errors.As(errs[signers[0]], &abort) || !slices.Equal(abort.Culprits, []party.ID{bad}) {
			t.Fatalf("honest signer: %v, want an abort blaming %s", errs[signers[0]], bad)
		}
	})
}

func FuzzUnmarshalPresignature(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{1, 0, 0, 0, 1, 7})
	f.Add(append([]byte{1}, make([]byte, 30)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		pre, err := mpc.UnmarshalPresignature(data)
		if err == nil {
			if _, err := mpc.MarshalPresignature(pre); err != nil {
				t.Fatalf("decoded a presignature that does not encode: %v", err)
			}
		}
	})
}
