package mpc

import (
	"errors"

	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/pkg/protocol"
)

// Reasons an incoming message is dropped. They are logged, never returned:
// a peer (or the relay) sending junk must not end a ceremony that honest
// messages can still complete.
var (
	errTooLarge      = errors.New("message too large or empty")
	errUndecodable   = errors.New("message does not decode")
	errSpoofedSender = errors.New("embedded sender differs from transport sender")
	errFromSelf      = errors.New("message claims to come from this party")
	errMisrouted     = errors.New("message addressed to another party")
	errNotAcceptable = errors.New("handler cannot accept message (duplicate, stale or foreign session)")
)

// decodeMessage parses an incoming packet and applies the checks the
// library does not: the library trusts msg.From, but only the transport
// knows who really sent it.
func decodeMessage(p Packet, self party.ID, limit int) (*protocol.Message, error) {
	if len(p.Data) == 0 || len(p.Data) > limit {
		return nil, errTooLarge
	}
	var msg protocol.Message
	// UnmarshalBinary swallows CBOR errors and returns nil, leaving msg zero;
	// an empty Protocol or From is how a failed decode shows.
	if err := msg.UnmarshalBinary(p.Data); err != nil || msg.Protocol == "" || msg.From == "" || msg.SSID == nil {
		return nil, errUndecodable
	}
	if msg.From != p.From {
		return nil, errSpoofedSender
	}
	if msg.From == self {
		return nil, errFromSelf
	}
	if msg.To != "" && msg.To != self {
		return nil, errMisrouted
	}
	return &msg, nil
}
