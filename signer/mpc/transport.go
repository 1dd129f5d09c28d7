// Package mpc runs the multi-party-sig CMP protocols (threshold ECDSA on
// secp256k1) for one signer over any message transport.
//
// The protocol library is a passive state machine: it emits messages on a
// channel and consumes messages handed to Accept. Runner is the loop that
// connects that state machine to a Transport (the sealed relay in production,
// ChanNetwork in tests), enforces cancellation and turns aborts into errors
// that name the misbehaving parties.
//
// Sigil's threshold t means "t signers must take part"; the library's
// threshold argument is the number of tolerated corruptions, t-1. Keygen
// takes Sigil's t and converts.
package mpc

import (
	"context"

	"github.com/taurusgroup/multi-party-sig/pkg/party"
)

// Packet is one protocol message as it arrives from the transport.
type Packet struct {
	// From is the sender as authenticated by the transport (the mTLS identity
	// checked by the seal layer), not as claimed inside Data. The runner drops
	// any message whose embedded sender differs, so one signer cannot speak
	// for another even though the relay carries everyone's traffic.
	From party.ID
	// Data is the output of protocol.Message.MarshalBinary.
	Data []byte
}

// Transport carries the messages of one ceremony for one party.
//
// Send delivers data to exactly one other party; it never sees a broadcast
// address because the runner fans broadcasts out itself: only the runner
// knows which parties take part in this ceremony (a signing quorum is a
// subset of the key's parties), and the seal layer encrypts to one recipient
// at a time anyway. Send may block for back-pressure but must honour ctx.
// It must not retain data after returning unless it copies it.
//
// Incoming yields the messages addressed to this party, in any order, with
// duplicates allowed (the protocol handler ignores repeats). Closing the
// channel tells the runner the transport is gone; the ceremony then fails
// with ErrTransportClosed.
type Transport interface {
	Send(ctx context.Context, to party.ID, data []byte) error
	Incoming() <-chan Packet
}

// Outgoing is one message for one party.
type Outgoing struct {
	To   party.ID
	Data []byte
}

// BatchSender is a Transport that hands several messages to the network in
// one call. The runner uses it for everything the protocol emitted at once
// (a round's broadcast and direct messages), so a round costs one network
// round trip rather than one per message.
type BatchSender interface {
	SendBatch(ctx context.Context, msgs []Outgoing) error
}
