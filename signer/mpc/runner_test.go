package mpc_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	decredecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

func TestSign(t *testing.T) {
	skipShort(t)
	cfgs := mpctest.Configs(t, 3, 2)
	pub, err := mpc.PublicKey(cfgs["signer-1"])
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 33 {
		t.Fatalf("public key is %d bytes", len(pub))
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, signers := range [][]party.ID{{"signer-1", "signer-2"}, {"signer-2", "signer-3"}} {
		t.Run(string(signers[0])+"+"+string(signers[1]), func(t *testing.T) {
			digest := sha256.Sum256([]byte("sign with " + string(signers[0]) + string(signers[1])))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			res := signAll(ctx, &mpc.Runner{}, cfgs, signers, digest[:], nil)
			var first ecsig.Signature
			for i, id := range signers {
				r := res[id]
				if r.err != nil {
					t.Fatalf("%s: %v", id, r.err)
				}
				sig, err := mpc.ToSignature(r.sig, pub, digest[:])
				if err != nil {
					t.Fatalf("%s: convert: %v", id, err)
				}
				if i == 0 {
					first = sig
				} else if sig != first {
					t.Fatalf("signers disagree on the signature")
				}
			}
			// Independent checks with decred: DER, and recovery from the
			// Ethereum form.
			der, err := decredecdsa.ParseDERSignature(first.DER())
			if err != nil {
				t.Fatal(err)
			}
			if !der.Verify(digest[:], pk) {
				t.Fatal("decred rejects the DER signature")
			}
			eth := first.Ethereum()
			if len(eth) != 65 || eth[64] > 1 {
				t.Fatalf("ethereum form %x", eth)
			}
			compact := append([]byte{27 + 4 + eth[64]}, eth[:64]...)
			rec, _, err := decredecdsa.RecoverCompact(compact, digest[:])
			if err != nil || !rec.IsEqual(pk) {
				t.Fatalf("recovery from v=%d failed: %v", eth[64], err)
			}
			if !ecsig.Verify(pub, digest[:], first) {
				t.Fatal("ecsig.Verify rejects")
			}
		})
	}
}

func TestSignSilentPartyTimesOut(t *testing.T) {
	skipShort(t)
	cfgs := mpctest.Configs(t, 3, 2)
	signers := []party.ID{"signer-1", "signer-2"}
	digest := sha256.Sum256([]byte("timeout"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	res := signAll(ctx, &mpc.Runner{}, cfgs, signers, digest[:], func(id party.ID, tr mpc.Transport) mpc.Transport {
		if id == "signer-2" {
			return dropTransport{tr}
		}
		return tr
	})
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("took %s after a 5 s deadline", el)
	}
	for id, r := range res {
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("%s: err = %v, want deadline exceeded", id, r.err)
		}
	}
}

// TestCancelNotifiesPeers checks that a party whose caller gives up tells
// the others, which then fail at once naming it rather than waiting out
// their own deadline.
func TestCancelNotifiesPeers(t *testing.T) {
	skipShort(t)
	cfgs := mpctest.Configs(t, 3, 2)
	signers := []party.ID{"signer-1", "signer-2"}
	digest := sha256.Sum256([]byte("cancel"))
	network := mpc.NewChanNetwork(signers)
	defer network.Close()
	var r mpc.Runner

	quitter, quit := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// signer-1 never hears from signer-2 (which only sends to a void
		// until it learns of the abort) and is cancelled after a moment.
		_, err := r.Sign(quitter, []byte("sid"), cfgs["signer-1"], signers, digest[:], network.Transport("signer-1"))
		done <- err
	}()
	time.AfterFunc(500*time.Millisecond, quit)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := r.Sign(ctx, []byte("sid"), cfgs["signer-2"], signers, digest[:], dropTransport{network.Transport("signer-2")})
	var abort *mpc.AbortError
	if !errors.As(err, &abort) || !errors.Is(err, mpc.ErrAborted) {
		t.Fatalf("signer-2: err = %v, want AbortError", err)
	}
	if len(abort.Culprits) != 1 || abort.Culprits[0] != "signer-1" {
		t.Fatalf("culprits = %v, want [signer-1]", abort.Culprits)
	}
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("abort took %s", el)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("signer-1: err = %v, want canceled", err)
	}
}

func TestGarbageIsDropped(t *testing.T) {
	skipShort(t)
	cfgs := mpctest.Configs(t, 3, 2)
	signers := []party.ID{"signer-1", "signer-2"}
	digest := sha256.Sum256([]byte("garbage"))

	var drops atomic.Int64
	logger := slog.New(countHandler{&drops})
	garbage := []mpc.Packet{
		{From: "signer-2", Data: nil},
		{From: "signer-2", Data: []byte{0xff, 0x00, 0x13}},
		{From: "signer-2", Data: bytes.Repeat([]byte{0xa8}, 100)},                       // CBOR-ish
		{From: "signer-2", Data: mustMarshal(t, "signer-2", "signer-1", []byte("x"))},   // foreign session
		{From: "signer-3", Data: mustMarshal(t, "signer-2", "", []byte("spoofed"))},     // claims another sender
		{From: "signer-1", Data: mustMarshal(t, "signer-1", "", []byte("reflected"))},   // from self
		{From: "signer-2", Data: mustMarshal(t, "signer-2", "signer-3", []byte("mis"))}, // for someone else
		{From: "signer-2", Data: make([]byte, mpc.DefaultMaxMessageSize+1)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res := signAll(ctx, &mpc.Runner{Logger: logger}, cfgs, signers, digest[:], func(id party.ID, tr mpc.Transport) mpc.Transport {
		if id == "signer-1" {
			return newInjectTransport(tr, garbage)
		}
		return tr
	})
	for id, r := range res {
		if r.err != nil {
			t.Fatalf("%s: %v", id, r.err)
		}
	}
	if got := drops.Load(); got < int64(len(garbage)) {
		t.Fatalf("logged %d drops, want at least %d", got, len(garbage))
	}
}

func TestKeygen(t *testing.T) {
	skipShort(t)
	cfgs, err := mpctest.Generate(context.Background(), 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	var pub []byte
	for id, cfg := range cfgs {
		if cfg.Threshold != 1 {
			t.Fatalf("%s: library threshold %d, want 1", id, cfg.Threshold)
		}
		p, err := mpc.PublicKey(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if pub != nil && !bytes.Equal(p, pub) {
			t.Fatal("parties disagree on the public key")
		}
		pub = p
	}
}

func TestInvalidArguments(t *testing.T) {
	var r mpc.Runner
	ctx := context.Background()
	ids := mpctest.IDs(3)
	tr := mpc.NewChanNetwork(ids)
	defer tr.Close()
	keygen := []struct {
		name      string
		self      party.ID
		parties   []party.ID
		threshold int
		sid       []byte
	}{
		{"threshold 0", "signer-1", ids, 0, []byte("s")},
		// t = 1 would make every share the whole key.
		{"threshold 1", "signer-1", ids, 1, []byte("s")},
		{"threshold above n", "signer-1", ids, 4, []byte("s")},
		{"self absent", "signer-9", ids, 2, []byte("s")},
		{"duplicate", "signer-1", []party.ID{"signer-1", "signer-1", "signer-2"}, 2, []byte("s")},
		{"empty id", "signer-1", []party.ID{"signer-1", ""}, 2, []byte("s")},
		{"long id", "signer-1", []party.ID{"signer-1", party.ID(bytes.Repeat([]byte("x"), 33))}, 2, []byte("s")},
		{"space in id", "signer-1", []party.ID{"signer-1", "signer 2"}, 2, []byte("s")},
		{"single party", "signer-1", []party.ID{"signer-1"}, 1, []byte("s")},
		{"no session id", "signer-1", ids, 2, nil},
	}
	for _, tc := range keygen {
		t.Run("keygen/"+tc.name, func(t *testing.T) {
			_, err := r.Keygen(ctx, tc.sid, tc.self, tc.parties, tc.threshold, tr.Transport("signer-1"))
			if !errors.Is(err, mpc.ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	cfgs := mpctest.Configs(t, 3, 2)
	digest := make([]byte, 32)
	sign := []struct {
		name    string
		cfg     *cmp.Config
		signers []party.ID
		digest  []byte
	}{
		{"nil config", nil, ids[:2], digest},
		{"short digest", cfgs["signer-1"], ids[:2], digest[:31]},
		{"too few signers", cfgs["signer-1"], ids[:1], digest},
		{"self not signing", cfgs["signer-1"], ids[1:], digest},
		{"stranger", cfgs["signer-1"], []party.ID{"signer-1", "signer-9"}, digest},
	}
	for _, tc := range sign {
		t.Run("sign/"+tc.name, func(t *testing.T) {
			_, err := r.Sign(ctx, []byte("s"), tc.cfg, tc.signers, tc.digest, tr.Transport("signer-1"))
			if !errors.Is(err, mpc.ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestTransportClosed(t *testing.T) {
	skipShort(t)
	cfgs := mpctest.Configs(t, 3, 2)
	signers := []party.ID{"signer-1", "signer-2"}
	network := mpc.NewChanNetwork(signers)
	time.AfterFunc(300*time.Millisecond, network.Close)
	digest := make([]byte, 32)
	_, err := (&mpc.Runner{}).Sign(context.Background(), []byte("s"), cfgs["signer-1"], signers, digest, network.Transport("signer-1"))
	if !errors.Is(err, mpc.ErrTransportClosed) && !errors.Is(err, mpc.ErrNetworkClosed) {
		t.Fatalf("err = %v, want transport closed", err)
	}
}

type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }
