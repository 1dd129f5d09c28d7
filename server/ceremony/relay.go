package ceremony

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	deliveryv1 "github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1/deliveryv1connect"
	"github.com/sigil-wallet/sigil/server/store"
)

// relayPoll bounds how long a Receive stream sleeps without a wake-up, so
// it notices messages stored by another coordinator replica.
const relayPoll = time.Second

// DeliveryService returns the relay: the DeliveryService handler of o.
func (o *Orchestrator) DeliveryService() deliveryv1connect.DeliveryServiceHandler {
	return &relay{o: o}
}

type relay struct{ o *Orchestrator }

// Send stores sealed messages from the caller, who must be a party of the
// running ceremony, each to another party. The sender is the certificate's
// name: a signer cannot send as another.
func (r *relay) Send(ctx context.Context, req *connect.Request[deliveryv1.SendRequest]) (*connect.Response[deliveryv1.SendResponse], error) {
	o := r.o
	who, err := o.caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := o.runningParty(ctx, req.Msg.GetCeremonyId(), who)
	if err != nil {
		return nil, err
	}
	msgs := make([]store.OutgoingMessage, 0, len(req.Msg.GetMessages()))
	var size int
	for i, m := range req.Msg.GetMessages() {
		switch {
		case m.GetTo() == who.Name:
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("messages[%d].to: a signer does not send to itself", i))
		case !slices.Contains(c.Parties, m.GetTo()):
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("messages[%d].to: %q is not a party of ceremony %s", i, m.GetTo(), c.ID))
		}
		msgs = append(msgs, store.OutgoingMessage{Recipient: m.GetTo(), Sealed: m.GetSealed()})
		size += len(m.GetSealed())
	}
	if err := o.store.AppendMessagesWithin(ctx, c.ID, who.Name, msgs, RelayQuota(c.Kind, len(c.Parties))); err != nil {
		if qe := (*store.QuotaError)(nil); errors.As(err, &qe) {
			o.metrics.quotaRefusals.Inc()
			o.logger.WarnContext(ctx, "relay: quota exceeded", "ceremony", c.ID, "sender", who.Name, "error", err)
			return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%s in %s ceremony %s of %d parties: %w; "+
				"an honest signer never sends this much", who.Name, c.Kind, c.ID, len(c.Parties), qe))
		}
		o.logger.ErrorContext(ctx, "relay: store messages", "ceremony", c.ID, "error", err)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("could not store the messages; send them again"))
	}
	o.metrics.relayed.Add(float64(len(msgs)))
	o.metrics.bytes.Add(float64(size))
	o.hub.Notify(c.ID)
	o.wakeOthers(ctx, wakeRelay, c.ID)
	return connect.NewResponse(&deliveryv1.SendResponse{}), nil
}

// Receive streams the caller's mail in one ceremony, from after_cursor,
// until the ceremony ends. Only the caller's own mailbox is ever read.
func (r *relay) Receive(ctx context.Context, req *connect.Request[deliveryv1.ReceiveRequest], stream *connect.ServerStream[deliveryv1.ReceiveResponse]) error {
	o := r.o
	who, err := o.caller(ctx)
	if err != nil {
		return err
	}
	c, err := o.partyCeremony(ctx, req.Msg.GetCeremonyId(), who)
	if err != nil {
		return err
	}
	if !slices.Contains(c.Parties, who.Name) {
		if c.State == store.CeremonyWaiting {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("ceremony %s has not started", c.ID))
		}
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is not a party of ceremony %s", who.Name, c.ID))
	}
	cursor := int64(min(req.Msg.GetAfterCursor(), uint64(1<<62)))
	for {
		// Take the wake-up channel before reading, so a message stored
		// between the read and the wait still wakes us.
		wake, release := o.hub.Subscribe(c.ID)
		done, err := r.deliver(ctx, c, who.Name, &cursor, stream, wake)
		release()
		if done || err != nil {
			return err
		}
	}
}

// deliver sends the caller's waiting mail, or waits for more. done is true
// when the ceremony has ended.
func (r *relay) deliver(ctx context.Context, c *store.Ceremony, name string, cursor *int64,
	stream *connect.ServerStream[deliveryv1.ReceiveResponse], wake <-chan struct{}) (bool, error) {
	o := r.o
	msgs, err := o.store.Mailbox(ctx, c.ID, name, *cursor, 64)
	if err != nil {
		return false, connect.NewError(connect.CodeUnavailable, errors.New("could not read the mailbox; reconnect with your last cursor"))
	}
	if len(msgs) > 0 {
		out := &deliveryv1.ReceiveResponse{}
		for _, m := range msgs {
			out.Messages = append(out.Messages, &deliveryv1.DeliveredMessage{Cursor: uint64(m.Pos), From: m.Sender, Sealed: m.Sealed})
			*cursor = m.Pos
		}
		return false, stream.Send(out)
	}
	cur, err := o.store.GetCeremony(ctx, c.ID)
	if err != nil {
		return false, connect.NewError(connect.CodeUnavailable, errors.New("could not read the ceremony; reconnect with your last cursor"))
	}
	if cur.State != store.CeremonyRunning {
		return true, nil // ended: its messages are gone, and so is the need for them
	}
	t := time.NewTimer(relayPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return true, nil
	case <-wake:
	case <-t.C:
	}
	return false, nil
}
