package mpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/taurusgroup/multi-party-sig/pkg/ecdsa"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/pkg/pool"
	"github.com/taurusgroup/multi-party-sig/pkg/protocol"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"
)

// DefaultMaxMessageSize bounds one incoming protocol message. The largest CMP
// messages (keygen round 3 with its Paillier and Pedersen proofs) are a few
// hundred KiB for small groups; 8 MiB leaves room for large groups while still
// refusing a peer that tries to exhaust memory.
const DefaultMaxMessageSize = 8 << 20

// abortNoticeTimeout bounds the best-effort "I am leaving" message sent to
// peers when the caller cancels: it must not delay the caller noticeably.
const abortNoticeTimeout = 2 * time.Second

// Runner runs CMP ceremonies for one party. The zero value is ready to use
// and a Runner may run any number of ceremonies concurrently.
type Runner struct {
	// Logger receives one record per dropped incoming message; nil discards.
	Logger *slog.Logger
	// Workers, when positive, gives each ceremony its own pool.Pool of that
	// many goroutines for the library's parallel proof work. Zero runs that
	// work on the ceremony's goroutine. A pool is never shared between
	// ceremonies: concurrent handlers on one pool deadlock.
	Workers int
	// MaxMessageSize overrides DefaultMaxMessageSize when positive.
	MaxMessageSize int
}

// Keygen runs CMP key generation among parties and returns this party's
// share. threshold is Sigil's t: any t of the n parties can later sign.
// sessionID must be unique per ceremony and identical at every party (the
// ceremony id); it domain-separates the protocol transcript.
func (r *Runner) Keygen(ctx context.Context, sessionID []byte, self party.ID, parties []party.ID, threshold int, tr Transport) (*cmp.Config, error) {
	ids, err := checkKeygen(sessionID, self, parties, threshold)
	if err != nil {
		return nil, err
	}
	pl := r.newPool()
	defer pl.TearDown()

	h, err := protocol.NewMultiHandler(cmp.Keygen(curve.Secp256k1{}, self, ids, threshold-1, pl), sessionID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	res, err := r.run(ctx, h, self, ids, tr)
	if err != nil {
		return nil, err
	}
	cfg, ok := res.(*cmp.Config)
	if !ok || cfg.ID != self || cfg.Threshold != threshold-1 || len(cfg.Public) != len(ids) {
		return nil, fmt.Errorf("%w: unexpected keygen output %T", ErrBadResult, res)
	}
	return cfg, nil
}

// Sign runs CMP signing of digest (exactly 32 bytes) among signers, which
// must include cfg.ID and number at least Sigil's t. The returned signature
// has been verified against the key's public point; it is the library's
// value and may have a high S: convert it with ToSignature.
func (r *Runner) Sign(ctx context.Context, sessionID []byte, cfg *cmp.Config, signers []party.ID, digest []byte, tr Transport) (*ecdsa.Signature, error) {
	if len(digest) != 32 {
		return nil, fmt.Errorf("%w: digest is %d bytes, want 32", ErrInvalidArgument, len(digest))
	}
	ids, err := r.checkSigners(sessionID, cfg, signers)
	if err != nil {
		return nil, err
	}
	pl := r.newPool()
	defer pl.TearDown()

	// The library keeps a reference to digest; give it a copy the caller
	// cannot change under it.
	msg := append([]byte(nil), digest...)
	return r.runSign(ctx, sessionID, cmp.Sign(cfg, ids, msg, pl), cfg, ids, msg, tr)
}

// runSign runs a CMP signing protocol (full or the online round) and
// returns its signature once it verifies against the key.
func (r *Runner) runSign(ctx context.Context, sessionID []byte, start protocol.StartFunc, cfg *cmp.Config, ids party.IDSlice, msg []byte, tr Transport) (*ecdsa.Signature, error) {
	h, err := protocol.NewMultiHandler(start, sessionID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	res, err := r.run(ctx, h, cfg.ID, ids, tr)
	if err != nil {
		return nil, err
	}
	sig, ok := res.(*ecdsa.Signature)
	if !ok || sig == nil || !sig.Verify(cfg.PublicPoint(), msg) {
		return nil, fmt.Errorf("%w: signature does not verify", ErrBadResult)
	}
	return sig, nil
}

func (r *Runner) newPool() *pool.Pool {
	if r.Workers <= 0 {
		return nil // TearDown and the library both accept a nil pool.
	}
	return pool.NewPool(r.Workers)
}

// checkParties validates and sorts the party list. Party IDs become
// polynomial evaluation points (the ID's bytes read as an integer), so the
// empty ID would be the point 0 where the secret itself lives, and IDs over
// 32 bytes would alias. Printable ASCII of 1 to 32 bytes rules out both, and
// rules out leading NULs that would make two different IDs the same point.
func checkParties(self party.ID, parties []party.ID) (party.IDSlice, error) {
	ids := party.NewIDSlice(parties)
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return nil, err
		}
	}
	if !ids.Valid() {
		return nil, fmt.Errorf("%w: duplicate party id", ErrInvalidArgument)
	}
	if !ids.Contains(self) {
		return nil, fmt.Errorf("%w: %q is not among the parties", ErrInvalidArgument, self)
	}
	return ids, nil
}

func checkID(id party.ID) error {
	if len(id) == 0 || len(id) > 32 {
		return fmt.Errorf("%w: party id %q must be 1 to 32 bytes", ErrInvalidArgument, id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: party id %q must be printable ASCII without spaces", ErrInvalidArgument, id)
		}
	}
	return nil
}

// run connects handler h to the transport until the protocol finishes, ctx
// ends or the transport fails.
//
// Two goroutines are needed because the handler emits messages on a bounded
// channel from inside Accept: if the same goroutine both accepted and sent,
// a full channel would block Accept forever. The sender therefore keeps
// draining the handler's output (discarding it once the ceremony is over)
// until the accept loop has stopped.
func (r *Runner) run(ctx context.Context, h *protocol.MultiHandler, self party.ID, parties party.IDSlice, tr Transport) (any, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	others := parties.Remove(self)

	var (
		sendErr    error
		template   *protocol.Message // first outgoing message, for the abort notice
		acceptDone = make(chan struct{})
		sendDone   = make(chan struct{})
	)
	go func() {
		defer close(sendDone)
		out := h.Listen()
		for {
			select {
			case msg, ok := <-out:
				if !ok {
					return
				}
				if template == nil {
					template = msg
				}
				if ctx.Err() != nil {
					continue
				}
				// Take what else the protocol emitted with it: one round's
				// messages leave in one batch.
				batch := append([]*protocol.Message{msg}, drain(out)...)
				// A send failing because the ceremony is already ending
				// is not the cause of its end; report the cause instead.
				if err := r.sendAll(ctx, batch, others, tr); err != nil && ctx.Err() == nil {
					sendErr = err
					cancel(err)
				}
			case <-acceptDone:
				// Nothing can block on out any more. Look at what is still
				// buffered only to learn the session's SSID for the abort
				// notice, should the ceremony be ending early.
				for template == nil {
					select {
					case msg, ok := <-out:
						if !ok {
							return
						}
						template = msg
					default:
						return
					}
				}
				return
			}
		}
	}()

	recvErr := r.receive(ctx, h, self, tr, sendDone)
	close(acceptDone)
	<-sendDone // from here on the handler and sendErr are ours alone

	if sendErr != nil {
		// Even if we reached a result, peers may lack our last messages: a
		// keygen share they cannot match is worse than a failed ceremony.
		return nil, sendErr
	}
	res, err := h.Result()
	if err == nil {
		return res, nil
	}
	if recvErr != nil {
		if ctx.Err() != nil && template != nil {
			r.sendAbortNotice(ctx, template, others, tr)
		}
		return nil, recvErr
	}
	var pe protocol.Error
	if errors.As(err, &pe) {
		return nil, &AbortError{Culprits: pe.Culprits, Err: pe.Err}
	}
	return nil, &AbortError{Err: err}
}

// receive feeds incoming messages to h until the handler's output closes
// (the protocol finished, with a result or an abort), which it reports as
// nil, or until ctx ends or the transport closes.
func (r *Runner) receive(ctx context.Context, h *protocol.MultiHandler, self party.ID, tr Transport, finished <-chan struct{}) error {
	in := tr.Incoming()
	limit := r.MaxMessageSize
	if limit <= 0 {
		limit = DefaultMaxMessageSize
	}
	for {
		select {
		case <-finished:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		case p, ok := <-in:
			if !ok {
				return ErrTransportClosed
			}
			msg, err := decodeMessage(p, self, limit)
			if err != nil {
				r.logDrop(ctx, p, err)
				continue
			}
			// CanAccept also rejects the nil-content messages the library's
			// UnmarshalBinary yields for bad CBOR, wrong session and
			// past rounds.
			if !h.CanAccept(msg) {
				r.logDrop(ctx, p, errNotAcceptable)
				continue
			}
			if err := accept(h, msg); err != nil {
				return err
			}
		}
	}
}

// accept hands msg to the handler. Decoding a round's content happens
// inside Accept on attacker-chosen bytes; should the library panic there, a
// peer could crash the signer, so the panic is turned into an abort blaming
// that peer. The handler is then unusable, which is fine: the ceremony ends.
func accept(h *protocol.MultiHandler, msg *protocol.Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &AbortError{Culprits: []party.ID{msg.From}, Err: fmt.Errorf("library panicked on message: %v", p)}
		}
	}()
	h.Accept(msg)
	return nil
}

// drain returns the messages waiting in out without blocking.
func drain(out <-chan *protocol.Message) []*protocol.Message {
	var more []*protocol.Message
	for {
		select {
		case m, ok := <-out:
			if !ok || m == nil {
				return more
			}
			more = append(more, m)
		default:
			return more
		}
	}
}

// sendAll delivers msgs, in one call when the transport takes batches.
func (r *Runner) sendAll(ctx context.Context, msgs []*protocol.Message, others party.IDSlice, tr Transport) error {
	bs, ok := tr.(BatchSender)
	if !ok {
		for _, m := range msgs {
			if err := r.send(ctx, m, others, tr); err != nil {
				return err
			}
		}
		return nil
	}
	var batch []Outgoing
	for _, m := range msgs {
		data, err := m.MarshalBinary()
		if err != nil {
			return fmt.Errorf("mpc: marshal message: %w", err)
		}
		if m.Broadcast || m.To == "" {
			for _, id := range others {
				batch = append(batch, Outgoing{To: id, Data: data})
			}
			continue
		}
		batch = append(batch, Outgoing{To: m.To, Data: data})
	}
	if err := bs.SendBatch(ctx, batch); err != nil {
		return fmt.Errorf("mpc: send %d messages: %w", len(batch), err)
	}
	return nil
}

// send marshals msg and delivers it, fanning broadcasts out to every other
// party of this ceremony.
func (r *Runner) send(ctx context.Context, msg *protocol.Message, others party.IDSlice, tr Transport) error {
	data, err := msg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("mpc: marshal message: %w", err)
	}
	if msg.Broadcast || msg.To == "" {
		for _, id := range others {
			if err := tr.Send(ctx, id, data); err != nil {
				return fmt.Errorf("mpc: send to %s: %w", id, err)
			}
		}
		return nil
	}
	if err := tr.Send(ctx, msg.To, data); err != nil {
		return fmt.Errorf("mpc: send to %s: %w", msg.To, err)
	}
	return nil
}

// sendAbortNotice tells peers we left, so they fail at once instead of
// waiting for their own deadline. The library's Handler.Stop cannot do this
// (in v0.7.0-alpha-2025-01-28 it only acts on a handler that has already
// finished, and then panics on its closed channel), so the runner builds the
// library's own abort message: round 0 with the session's SSID.
func (r *Runner) sendAbortNotice(ctx context.Context, template *protocol.Message, others party.IDSlice, tr Transport) {
	notice := &protocol.Message{
		SSID:     template.SSID,
		From:     template.From,
		Protocol: template.Protocol,
		Data:     []byte("aborted by party: " + context.Cause(ctx).Error()),
	}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortNoticeTimeout)
	defer cancel()
	if err := r.send(nctx, notice, others, tr); err != nil && r.Logger != nil {
		r.Logger.LogAttrs(nctx, slog.LevelDebug, "mpc: abort notice not delivered", slog.Any("error", err))
	}
}

func (r *Runner) logDrop(ctx context.Context, p Packet, reason error) {
	if r.Logger == nil {
		return
	}
	level := slog.LevelWarn
	if errors.Is(reason, errNotAcceptable) {
		// Duplicates and late messages are routine with a resumable relay.
		level = slog.LevelDebug
	}
	r.Logger.LogAttrs(ctx, level, "mpc: dropped incoming message",
		slog.String("from", string(p.From)),
		slog.Int("size", len(p.Data)),
		slog.String("reason", reason.Error()))
}
