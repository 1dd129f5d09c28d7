package mpc_test

import (
	"crypto/sha256"
	"testing"

	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/pkg/protocol"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

func mustMarshal(t testing.TB, from, to party.ID, data []byte) []byte {
	t.Helper()
	m := &protocol.Message{SSID: []byte("ssid"), From: from, To: to, Protocol: "cmp/sign", RoundNumber: 2, Data: data}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeIncoming drives arbitrary bytes through the decode path every
// relayed message takes, and then through the handler's CanAccept, with
// real first-round messages of a signing session as seeds.
func FuzzDecodeIncoming(f *testing.F) {
	cfgs := mpctest.Configs(f, 3, 2)
	signers := []party.ID{"signer-1", "signer-2"}
	digest := sha256.Sum256([]byte("fuzz"))
	newHandler := func(id party.ID) *protocol.MultiHandler {
		h, err := protocol.NewMultiHandler(cmp.Sign(cfgs[id], signers, digest[:], nil), []byte("sid"))
		if err != nil {
			f.Fatal(err)
		}
		return h
	}
	// Seeds: what signer-2 emits in round 1, as signer-1 would receive it.
	sender := newHandler("signer-2")
	out := sender.Listen()
	for range len(out) {
		b, err := (<-out).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(mustMarshal(f, "signer-2", "", nil))
	f.Add([]byte{0xa0})
	receiver := newHandler("signer-1")
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := mpc.DecodeMessage(mpc.Packet{From: "signer-2", Data: data}, "signer-1", mpc.DefaultMaxMessageSize)
		if err != nil {
			return
		}
		if msg.From != "signer-2" || (msg.To != "" && msg.To != "signer-1") {
			t.Fatalf("decode accepted %v", msg)
		}
		_ = receiver.CanAccept(msg) // must not panic
	})
}
