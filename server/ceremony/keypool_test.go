package ceremony

import (
	"errors"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/sigil-wallet/sigil/server/store"
)

func TestKeyPoolFilledWhenIdle(t *testing.T) {
	f := newFixtureWith(t, Config{KeyPool: 2, KeyPoolGroup: Group{Threshold: 2, Signers: group}}, group...)
	for i := range 2 {
		f.clock.Advance(time.Minute) // the signers have been idle
		f.step()                     // one pooled key generation is recorded
		f.step()                     // and started with every signer
		open, err := f.store.OpenCeremonies(f.ctx)
		if err != nil || len(open) != 1 || open[0].Kind != store.CeremonyKeygen || open[0].State != store.CeremonyRunning {
			t.Fatalf("round %d: open = %v, %v", i, open, err)
		}
		key, _ := secp256k1.GeneratePrivateKey()
		for _, p := range group {
			if err := f.o.complete(f.ctx, open[0], p, key.PubKey().SerializeCompressed()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.store.GetWallet(f.ctx, open[0].WalletID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a pooled key is visible before assignment: %v", err)
		}
	}
	f.clock.Advance(time.Minute)
	f.step()
	if open, _ := f.store.OpenCeremonies(f.ctx); len(open) != 0 {
		t.Fatalf("generating past the key pool size: %v", open)
	}
	if n, _ := f.store.PooledKeys(f.ctx, 2, group); n != 2 {
		t.Fatalf("PooledKeys = %d, want 2", n)
	}
}

func TestKeyPoolWaitsForEverySigner(t *testing.T) {
	f := newFixtureWith(t, Config{KeyPool: 1, KeyPoolGroup: Group{Threshold: 2, Signers: group}}, "signer-1", "signer-2")
	f.step()
	if open, _ := f.store.OpenCeremonies(f.ctx); len(open) != 0 {
		t.Fatalf("a pooled key generation was recorded with a signer down: %v", open)
	}
}

func TestPoolsWaitForIdleSigners(t *testing.T) {
	f := newFixtureWith(t, Config{KeyPool: 1, KeyPoolGroup: Group{Threshold: 2, Signers: group}}, group...)
	f.activeWallet()
	sg := f.requestSignature()
	f.step() // the signature starts: the signers are busy
	c := f.open(sg.ID)
	if err := f.o.complete(f.ctx, c, c.Parties[0], f.rs(sg.Digest)); err != nil {
		t.Fatal(err)
	}
	f.step() // nothing open, but the signers worked a moment ago
	if open, _ := f.store.OpenCeremonies(f.ctx); len(open) != 0 {
		t.Fatalf("a pool was filled right after a signature: %v", open)
	}
	f.clock.Advance(f.o.cfg.PoolIdle)
	f.step()
	if open, _ := f.store.OpenCeremonies(f.ctx); len(open) != 1 {
		t.Fatalf("no pooled key generation after %s idle: %v", f.o.cfg.PoolIdle, open)
	}
}
