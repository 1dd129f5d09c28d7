package ceremony

import "github.com/sigil-wallet/sigil/server/store"

// relayNeed is what one party of a ceremony sends each other party through
// the relay, measured with BenchmarkRelayTrafficKeygen and
// BenchmarkRelayTrafficSign in signer/mpc (CMP of multi-party-sig
// v0.7.0-alpha-2025-01-28, busiest party, payload before sealing):
//
//	keygen 2-of-3: 10 messages, 181,934 bytes (2 peers; largest 84,617)
//	keygen 3-of-5: 20 messages, 364,008 bytes (4 peers)
//	sign   2 of 3:  7 messages,  17,606 bytes (1 peer; largest 11,542)
//	sign   3 of 5: 14 messages,  35,212 bytes (2 peers)
//	sign   5 of 5: 28 messages,  70,424 bytes (4 peers)
//
// Both grow linearly with the number of peers and not otherwise, so the
// quota is a per-peer need times the peers.
type relayNeed struct {
	messages int   // per peer
	bytes    int64 // per peer
}

var relayNeeds = map[store.CeremonyKind]relayNeed{
	store.CeremonyKeygen: {messages: 5, bytes: 91_002},
	store.CeremonySign:   {messages: 7, bytes: 17_606},
}

const (
	// relayHeadroom multiplies the measured need: retransmissions after a
	// reconnect and library changes fit, a flood does not.
	relayHeadroom = 2
	// relayExtraMessages per peer covers the runner's abort notice.
	relayExtraMessages = 1
	// sealOverhead bounds what sealing adds to one message: header (names
	// and ceremony id), HPKE encapsulated key, GCM tag and the sender's
	// ECDSA signature, about 400 bytes at most.
	sealOverhead = 1024
)

// RelayQuota is the most one party may store in the relay during one
// ceremony of kind with parties parties. A kind without a measured need
// (a new protocol not yet measured) gets the largest of the known ones.
func RelayQuota(kind store.CeremonyKind, parties int) store.RelayLimit {
	need, ok := relayNeeds[kind]
	if !ok {
		for _, n := range relayNeeds {
			need.messages, need.bytes = max(need.messages, n.messages), max(need.bytes, n.bytes)
		}
	}
	peers := max(parties-1, 1)
	perPeer := need.messages + relayExtraMessages
	return store.RelayLimit{
		Messages: relayHeadroom * perPeer * peers,
		Bytes:    relayHeadroom * (need.bytes + int64(perPeer)*sealOverhead) * int64(peers),
	}
}
