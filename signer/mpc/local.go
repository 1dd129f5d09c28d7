package mpc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"
)

// LocalKeygen runs a CMP key generation with every party in this process
// over a ChanNetwork. It is the baseline `sigil bench mpc` compares the
// full stack with, and how test fixtures are made; production key
// generations run one party per signer.
func LocalKeygen(ctx context.Context, ids []party.ID, threshold int) (map[party.ID]*cmp.Config, error) {
	var runner Runner
	return runLocal(ctx, ids, func(ctx context.Context, sid []byte, id party.ID, tr Transport) (*cmp.Config, error) {
		return runner.Keygen(ctx, sid, id, ids, threshold, tr)
	})
}

// LocalSign runs a CMP signature by signers, all in this process over a
// ChanNetwork, and returns the signature (the same at every party).
func LocalSign(ctx context.Context, cfgs map[party.ID]*cmp.Config, signers []party.ID, digest []byte) (*ecdsa.Signature, error) {
	var runner Runner
	sigs, err := runLocal(ctx, signers, func(ctx context.Context, sid []byte, id party.ID, tr Transport) (*ecdsa.Signature, error) {
		return runner.Sign(ctx, sid, cfgs[id], signers, digest, tr)
	})
	if err != nil {
		return nil, err
	}
	return sigs[signers[0]], nil
}

// runLocal runs one party per id concurrently over a fresh ChanNetwork with
// a random session id, stopping them all at the first failure.
func runLocal[T any](ctx context.Context, ids []party.ID, run func(context.Context, []byte, party.ID, Transport) (T, error)) (map[party.ID]T, error) {
	network := NewChanNetwork(ids)
	defer network.Close()
	sid := make([]byte, 32)
	_, _ = rand.Read(sid) // crypto/rand.Read never fails (Go 1.24+)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		out  = make(map[party.ID]T, len(ids))
		errs []error
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := run(ctx, sid, id, network.Transport(id))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				cancel()
				return
			}
			out[id] = v
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// LocalPresign runs a CMP presigning by signers, all in this process, and
// returns each signer's part.
func LocalPresign(ctx context.Context, cfgs map[party.ID]*cmp.Config, signers []party.ID) (map[party.ID]*ecdsa.PreSignature, error) {
	var runner Runner
	return runLocal(ctx, signers, func(ctx context.Context, sid []byte, id party.ID, tr Transport) (*ecdsa.PreSignature, error) {
		return runner.Presign(ctx, sid, cfgs[id], signers, tr)
	})
}

// LocalPresignOnline signs digest in one round with the parts of one
// presignature, all in this process. Each part must never be used again.
func LocalPresignOnline(ctx context.Context, cfgs map[party.ID]*cmp.Config, pres map[party.ID]*ecdsa.PreSignature, digest []byte) (*ecdsa.Signature, error) {
	var runner Runner
	signers := make([]party.ID, 0, len(pres))
	for id := range pres {
		signers = append(signers, id)
	}
	sigs, err := runLocal(ctx, signers, func(ctx context.Context, sid []byte, id party.ID, tr Transport) (*ecdsa.Signature, error) {
		return runner.PresignOnline(ctx, sid, cfgs[id], pres[id], digest, tr)
	})
	if err != nil {
		return nil, err
	}
	return sigs[signers[0]], nil
}
