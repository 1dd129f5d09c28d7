package mpc

import (
	"errors"
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/party"
)

var (
	// ErrInvalidArgument reports a caller error detected before the protocol
	// starts (bad threshold, self not among the parties, wrong digest size...).
	ErrInvalidArgument = errors.New("mpc: invalid argument")
	// ErrTransportClosed means the transport's Incoming channel closed before
	// the protocol finished.
	ErrTransportClosed = errors.New("mpc: transport closed")
	// ErrAborted is matched (errors.Is) by every *AbortError.
	ErrAborted = errors.New("mpc: protocol aborted")
	// ErrBadResult means the protocol finished but its output failed Sigil's own
	// checks; it indicates a library bug rather than a misbehaving peer.
	ErrBadResult = errors.New("mpc: protocol produced an invalid result")
)

// AbortError is returned when the protocol aborted, either because this party
// detected misbehaviour or because another party announced an abort.
type AbortError struct {
	// Culprits are the parties the library blamed; empty when it could not
	// tell. When a peer announced its own abort, the culprit is that peer.
	Culprits []party.ID
	// Err is the library's reason.
	Err error
}

func (e *AbortError) Error() string {
	if len(e.Culprits) == 0 {
		return fmt.Sprintf("mpc: protocol aborted: %v", e.Err)
	}
	return fmt.Sprintf("mpc: protocol aborted (culprits %v): %v", e.Culprits, e.Err)
}

// Unwrap exposes both ErrAborted and the library's cause.
func (e *AbortError) Unwrap() []error { return []error{ErrAborted, e.Err} }
