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
	network := NewChanNetwork(ids)
	defer network.Close()
	sid := make([]byte, 32)
	_, _ = rand.Read(sid) // crypto/rand.Read never fails (Go 1.24+)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		cfgs   = make(map[party.ID]*cmp.Config, len(ids))
		errs   []error
		runner Runner
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg, err := runner.Keygen(ctx, sid, id, ids, threshold, network.Transport(id))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				cancel()
				return
			}
			cfgs[id] = cfg
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfgs, nil
}

// LocalSign runs a CMP signature by signers, all in this process over a
// ChanNetwork, and returns the signature (the same at every party).
func LocalSign(ctx context.Context, cfgs map[party.ID]*cmp.Config, signers []party.ID, digest []byte) (*ecdsa.Signature, error) {
	network := NewChanNetwork(signers)
	defer network.Close()
	sid := make([]byte, 32)
	_, _ = rand.Read(sid)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		out    *ecdsa.Signature
		errs   []error
		runner Runner
	)
	for _, id := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig, err := runner.Sign(ctx, sid, cfgs[id], signers, digest, network.Transport(id))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				cancel()
				return
			}
			out = sig
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
