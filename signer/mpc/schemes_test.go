package mpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	edfrost "github.com/taurusgroup/frost-ed25519/pkg/frost"
	edparty "github.com/taurusgroup/frost-ed25519/pkg/frost/party"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/frost"

	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// runAllSchemes runs f for every party concurrently over one ChanNetwork.
func runAllSchemes[T any](ids []party.ID, f func(id party.ID, tr mpc.Transport) (T, error)) (map[party.ID]T, error) {
	network := mpc.NewChanNetwork(ids)
	defer network.Close()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		out   = map[party.ID]T{}
		first error
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := f(id, network.Transport(id))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			out[id] = v
		}()
	}
	wg.Wait()
	return out, first
}

var threeIDs = []party.ID{"signer-1", "signer-2", "signer-3"}

func taprootKeys(t *testing.T) map[party.ID]*frost.TaprootConfig {
	t.Helper()
	var r mpc.Runner
	cfgs, err := runAllSchemes(threeIDs, func(id party.ID, tr mpc.Transport) (*frost.TaprootConfig, error) {
		return r.TaprootKeygen(context.Background(), []byte("cer_taproot"), id, threeIDs, 2, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfgs
}

// TestTaprootKeygenTweakSign: FROST keygen 2-of-3, each share tweaked per
// BIP-341, a 2-signer signature that btcd's BIP-340 verifier accepts for
// the output key, and shares that survive their stored encoding.
func TestTaprootKeygenTweakSign(t *testing.T) {
	cfgs := taprootKeys(t)
	internal := cfgs["signer-1"].PublicKey
	_, q, err := address.TaprootTweak(internal)
	if err != nil {
		t.Fatal(err)
	}
	signers := threeIDs[1:]
	msg := sha256.Sum256([]byte("sighash"))
	var r mpc.Runner
	sigs, err := runAllSchemes(signers, func(id party.ID, tr mpc.Transport) ([]byte, error) {
		b, err := mpc.MarshalTaproot(cfgs[id])
		if err != nil {
			return nil, err
		}
		cfg, err := mpc.UnmarshalTaproot(b)
		if err != nil {
			return nil, err
		}
		out, err := mpc.TaprootOutputConfig(cfg)
		if err != nil {
			return nil, err
		}
		return r.TaprootSign(context.Background(), []byte("cer_sign"), out, signers, msg[:], tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := schnorr.ParsePubKey(q)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := schnorr.ParseSignature(sigs["signer-2"])
	if err != nil {
		t.Fatal(err)
	}
	if !sig.Verify(msg[:], pub) {
		t.Fatal("btcd rejects the signature for the output key")
	}
}

// TestTaprootChildMatchesHDKeychain: the library's BIP-32 derivation of a
// FROST key matches btcutil's hdkeychain on the parent's xpub (the x-only
// key read as 0x02||x, with the chain code the parties agree on).
func TestTaprootChildMatchesHDKeychain(t *testing.T) {
	cfgs := taprootKeys(t)
	cfg := cfgs["signer-1"]
	child, err := mpc.DerivePath(cfg, []uint32{0, 7})
	if err != nil {
		t.Fatal(err)
	}
	xpub := hdkeychain.NewExtendedKey(chaincfg.MainNetParams.HDPublicKeyID[:], append([]byte{2}, cfg.PublicKey...), cfg.ChainKey, []byte{0, 0, 0, 0}, 0, 0, false)
	k, err := xpub.Derive(0)
	if err == nil {
		k, err = k.Derive(7)
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.ECPubKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := child.PublicKey, pub.SerializeCompressed()[1:]; string(got) != string(want) {
		t.Fatalf("child key %x, hdkeychain %x", got, want)
	}
}

// TestEd25519KeygenSign: FROST-Ed25519 keygen 2-of-3 and a 2-signer
// signature that crypto/ed25519 accepts, through the stored encoding.
func TestEd25519KeygenSign(t *testing.T) {
	var r mpc.Runner
	shares, err := runAllSchemes(threeIDs, func(id party.ID, tr mpc.Transport) (*mpc.Ed25519Share, error) {
		return r.Ed25519Keygen(context.Background(), []byte("cer_ed"), id, threeIDs, 2, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := shares["signer-1"].PublicKey()
	for _, id := range threeIDs {
		if string(shares[id].PublicKey()) != string(pub) {
			t.Fatalf("%s disagrees on the key", id)
		}
	}
	msg := []byte("a Solana transaction message, any bytes \x00\x01")
	signers := []party.ID{"signer-1", "signer-3"}
	sigs, err := runAllSchemes(signers, func(id party.ID, tr mpc.Transport) ([]byte, error) {
		b, err := mpc.MarshalEd25519(shares[id])
		if err != nil {
			return nil, err
		}
		sh, err := mpc.UnmarshalEd25519(b)
		if err != nil {
			return nil, err
		}
		return r.Ed25519Sign(context.Background(), sh, id, signers, msg, tr)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(pub, msg, sigs["signer-3"]) {
		t.Fatal("crypto/ed25519 rejects the signature")
	}
}

// FuzzDecodeEd25519 drives arbitrary bytes through the decode path every
// relayed FROST-Ed25519 message takes, then through the library's
// HandleMessage, with real first-round messages as seeds.
func FuzzDecodeEd25519(f *testing.F) {
	index := map[party.ID]edparty.ID{"signer-1": 1, "signer-2": 2, "signer-3": 3}
	seed, _, err := edfrost.NewKeygenState(2, edparty.IDSlice{1, 2, 3}, 1, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range seed.ProcessAll() {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mpc.DecodeEd(mpc.Packet{From: "signer-2", Data: data}, index, "signer-1", mpc.DefaultMaxMessageSize)
		if err != nil {
			return
		}
		if m.From != 2 || (!m.IsBroadcast() && m.To != 1) {
			t.Fatalf("decode accepted %+v", m.Header)
		}
		st, _, err := edfrost.NewKeygenState(1, edparty.IDSlice{1, 2, 3}, 1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		st.ProcessAll()
		_ = st.HandleMessage(m) // must not panic
		st.ProcessAll()
	})
}

// BenchmarkInProcessTaprootSign measures a 2-of-3 FROST Taproot signing
// (tweaked key), every party in this process over a ChanNetwork.
func BenchmarkInProcessTaprootSign(b *testing.B) {
	var r mpc.Runner
	cfgs, err := runAllSchemes(threeIDs, func(id party.ID, tr mpc.Transport) (*frost.TaprootConfig, error) {
		cfg, err := r.TaprootKeygen(context.Background(), []byte("cer_bench"), id, threeIDs, 2, tr)
		if err != nil {
			return nil, err
		}
		return mpc.TaprootOutputConfig(cfg)
	})
	if err != nil {
		b.Fatal(err)
	}
	signers := threeIDs[:2]
	msg := sha256.Sum256([]byte("bench"))
	b.ResetTimer()
	for i := range b.N {
		sid := []byte{byte(i), byte(i >> 8), byte(i >> 16), 1}
		if _, err := runAllSchemes(signers, func(id party.ID, tr mpc.Transport) ([]byte, error) {
			return r.TaprootSign(context.Background(), sid, cfgs[id], signers, msg[:], tr)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInProcessEd25519Sign measures a 2-of-3 FROST-Ed25519 signing,
// every party in this process over a ChanNetwork.
func BenchmarkInProcessEd25519Sign(b *testing.B) {
	var r mpc.Runner
	shares, err := runAllSchemes(threeIDs, func(id party.ID, tr mpc.Transport) (*mpc.Ed25519Share, error) {
		return r.Ed25519Keygen(context.Background(), []byte("cer_bench"), id, threeIDs, 2, tr)
	})
	if err != nil {
		b.Fatal(err)
	}
	signers := threeIDs[:2]
	msg := []byte("bench")
	b.ResetTimer()
	for range b.N {
		if _, err := runAllSchemes(signers, func(id party.ID, tr mpc.Transport) ([]byte, error) {
			return r.Ed25519Sign(context.Background(), shares[id], id, signers, msg, tr)
		}); err != nil {
			b.Fatal(err)
		}
	}
}
