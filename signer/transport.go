package signer

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/pkg/protocol"

	deliveryv1 "github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1"
	"github.com/sigil-wallet/sigil/internal/seal"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// relayTransport carries one ceremony's protocol messages through the
// coordinator's relay: each is sealed to its recipient before it leaves
// this process and opened (verified, decrypted, replay-checked) when it
// arrives. What fails to open is dropped and logged with its sender.
type relayTransport struct {
	s          *Signer
	ceremonyID string
	sess       *seal.Session
	in         chan mpc.Packet
	cancel     context.CancelFunc
	done       chan struct{}
	// ended is called when the relay says the ceremony is over (its
	// mailbox stream ends cleanly), so the protocol stops waiting for
	// messages that will never come, even if the news of the end was
	// missed while the coordinator was away.
	ended func()
}

func newRelayTransport(ctx context.Context, s *Signer, ceremonyID string, sess *seal.Session, ended func()) *relayTransport {
	ctx, cancel := context.WithCancel(ctx)
	t := &relayTransport{s: s, ceremonyID: ceremonyID, sess: sess, in: make(chan mpc.Packet, 256), cancel: cancel, done: make(chan struct{}), ended: ended}
	go t.receive(ctx)
	return t
}

func (t *relayTransport) close() {
	t.cancel()
	<-t.done
}

// Incoming yields the opened messages addressed to this signer.
func (t *relayTransport) Incoming() <-chan mpc.Packet { return t.in }

// Send seals data to one peer and hands it to the relay, retrying while the
// coordinator is briefly unavailable.
func (t *relayTransport) Send(ctx context.Context, to party.ID, data []byte) error {
	return t.SendBatch(ctx, []mpc.Outgoing{{To: to, Data: data}})
}

// maxSendBatch is the most messages one relay Send takes.
const maxSendBatch = 64

// SendBatch seals each message to its peer and hands them all to the relay
// in one call, retrying while the coordinator is briefly unavailable.
func (t *relayTransport) SendBatch(ctx context.Context, msgs []mpc.Outgoing) error {
	for len(msgs) > maxSendBatch {
		if err := t.SendBatch(ctx, msgs[:maxSendBatch]); err != nil {
			return err
		}
		msgs = msgs[maxSendBatch:]
	}
	req := &deliveryv1.SendRequest{CeremonyId: t.ceremonyID, Messages: make([]*deliveryv1.OutgoingMessage, 0, len(msgs))}
	for _, m := range msgs {
		sealed, err := t.sess.Seal(string(m.To), roundOf(m.Data), m.Data)
		if err != nil {
			return err
		}
		req.Messages = append(req.Messages, &deliveryv1.OutgoingMessage{To: string(m.To), Sealed: sealed})
	}
	t.s.metrics.sends.Inc()
	backoff := 100 * time.Millisecond
	for {
		_, err := t.s.delivery.Send(ctx, connect.NewRequest(req))
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// roundOf reads the protocol round of a message for the envelope header,
// which binds it; 0 when the message does not decode (the peer then drops
// it anyway).
func roundOf(data []byte) uint32 {
	var m protocol.Message
	if err := m.UnmarshalBinary(data); err != nil {
		return 0
	}
	return uint32(m.RoundNumber)
}

func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeResourceExhausted, connect.CodeAborted:
		return true
	}
	return false
}

// receive reads this signer's mailbox, resuming from the last cursor after
// a broken stream, until the ceremony ends or ctx is done.
func (t *relayTransport) receive(ctx context.Context) {
	defer close(t.done)
	var cursor uint64
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		stream, err := t.s.delivery.Receive(ctx, connect.NewRequest(&deliveryv1.ReceiveRequest{CeremonyId: t.ceremonyID, AfterCursor: cursor}))
		if err == nil {
			for stream.Receive() {
				backoff = 100 * time.Millisecond
				for _, m := range stream.Msg().GetMessages() {
					cursor = m.GetCursor()
					t.deliver(ctx, m)
				}
			}
			err = stream.Err()
			_ = stream.Close()
			if err == nil {
				t.ended() // the ceremony ended
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if code := connect.CodeOf(err); code == connect.CodeNotFound || code == connect.CodePermissionDenied || code == connect.CodeFailedPrecondition {
			t.s.logger.WarnContext(ctx, "relay refused the mailbox", "ceremony", t.ceremonyID, "error", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (t *relayTransport) deliver(ctx context.Context, m *deliveryv1.DeliveredMessage) {
	_, payload, err := t.sess.Open(m.GetFrom(), m.GetSealed())
	if err != nil {
		if !errors.Is(err, seal.ErrReplay) { // a replay is normal after resuming from a cursor
			t.s.metrics.dropped.Inc()
			t.s.logger.WarnContext(ctx, "dropped a relayed message", "ceremony", t.ceremonyID, "from", m.GetFrom(), "error", err)
		}
		return
	}
	select {
	case t.in <- mpc.Packet{From: party.ID(m.GetFrom()), Data: payload}:
	case <-ctx.Done():
	}
}
