package ceremony

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/internal/seal"
	"github.com/sigil-wallet/sigil/server/node"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/wire"
)

// CeremonyService returns the CeremonyService handler of o.
func (o *Orchestrator) CeremonyService() ceremonyv1connect.CeremonyServiceHandler {
	return &ceremonyService{o: o}
}

type ceremonyService struct{ o *Orchestrator }

// errDisabled answers signers that reach a coordinator without MPC.
var errDisabled = connect.NewError(connect.CodeFailedPrecondition,
	errors.New("this coordinator runs no MPC signer group (--mpc-signers): connect signers to the one that does"))

func (o *Orchestrator) caller(ctx context.Context) (pki.Identity, error) {
	if o.cfg.Disabled {
		return pki.Identity{}, errDisabled
	}
	id, ok := node.PeerFrom(ctx)
	if !ok || id.Role != pki.RoleSigner {
		return id, connect.NewError(connect.CodePermissionDenied, errors.New("only MPC signers may call this service"))
	}
	return id, nil
}

// partyCeremony loads a ceremony and checks the caller takes part in it.
// A signer outside the ceremony's group is refused with PermissionDenied.
func (o *Orchestrator) partyCeremony(ctx context.Context, id string, who pki.Identity) (*store.Ceremony, error) {
	c, err := o.store.GetCeremony(ctx, id)
	switch {
	case err != nil:
		return nil, wire.ToConnect(ctx, o.logger, fmt.Errorf("ceremony %s: %w", id, err))
	case !slices.Contains(c.Parties, who.Name) && !slices.Contains(c.GroupSigners, who.Name):
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is not a party of ceremony %s", who.Name, id))
	}
	return c, nil
}

func (s *ceremonyService) WatchCeremonies(ctx context.Context, req *connect.Request[ceremonyv1.WatchCeremoniesRequest], stream *connect.ServerStream[ceremonyv1.WatchCeremoniesResponse]) error {
	o := s.o
	who, err := o.caller(ctx)
	if err != nil {
		return err
	}
	// The coordinator checks the announcement too, so a signer cannot hand
	// its peers a key in another signer's name; the peers still verify it
	// themselves against the signer CA.
	peer, err := seal.VerifyAnnouncement(req.Msg.GetAnnouncement(), o.cfg.SignerRoots, o.now())
	if err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("announcement: %w", err))
	}
	if peer.Name != who.Name {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("announcement is for %q but the certificate is %q", peer.Name, who.Name))
	}
	conn := o.streams.join(who.Name, req.Msg.GetAnnouncement(), o.now())
	o.signerJoined(ctx, conn)
	defer o.signerLeft(conn)
	defer o.streams.leave(conn, o.now())
	o.logger.InfoContext(ctx, "signer online", "signer", who.Name)
	defer o.logger.InfoContext(ctx, "signer offline", "signer", who.Name)

	// Ceremonies this signer is running are sent again: it may have
	// reconnected mid-ceremony.
	if err := o.resend(ctx, stream, conn); err != nil {
		return err
	}
	o.NotifyWork()
	heartbeat := time.NewTicker(o.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-conn.closed:
			return connect.NewError(connect.CodeAborted, errors.New("replaced by a newer stream of the same signer"))
		case ev := <-conn.events:
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-heartbeat.C:
			if err := stream.Send(&ceremonyv1.WatchCeremoniesResponse{Event: &ceremonyv1.WatchCeremoniesResponse_Heartbeat{
				Heartbeat: &ceremonyv1.Heartbeat{Time: timestamppb.New(o.now())}}}); err != nil {
				return err
			}
		}
	}
}

func (o *Orchestrator) resend(ctx context.Context, stream *connect.ServerStream[ceremonyv1.WatchCeremoniesResponse], conn *signerConn) error {
	name := conn.name
	open, err := o.store.OpenCeremonies(ctx)
	if err != nil {
		return err
	}
	for _, c := range open {
		if c.State != store.CeremonyRunning || !slices.Contains(c.Parties, name) {
			continue
		}
		peers, ok := o.presence.Announcements(c.Parties)
		if !ok {
			continue // a peer is away; the ceremony will be retried or fail
		}
		msg, err := o.toProto(ctx, c, peers)
		if err != nil {
			return err
		}
		if err := stream.Send(event(msg)); err != nil {
			return err
		}
		o.streams.markSent(conn, c.ID)
	}
	return nil
}

func (s *ceremonyService) GetCeremony(ctx context.Context, req *connect.Request[ceremonyv1.GetCeremonyRequest]) (*connect.Response[ceremonyv1.GetCeremonyResponse], error) {
	who, err := s.o.caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.o.partyCeremony(ctx, req.Msg.GetCeremonyId(), who)
	if err != nil {
		return nil, err
	}
	msg, err := s.o.toProto(ctx, c, nil)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	return connect.NewResponse(&ceremonyv1.GetCeremonyResponse{Ceremony: msg}), nil
}

// runningParty loads a ceremony for a report and checks it is running and
// the caller is one of its parties.
func (o *Orchestrator) runningParty(ctx context.Context, id string, who pki.Identity) (*store.Ceremony, error) {
	c, err := o.partyCeremony(ctx, id, who)
	if err != nil {
		return nil, err
	}
	if c.State != store.CeremonyRunning {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("ceremony %s is %s; it takes no messages or reports", c.ID, c.State))
	}
	if !slices.Contains(c.Parties, who.Name) {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s is not a party of ceremony %s", who.Name, c.ID))
	}
	return c, nil
}

func (s *ceremonyService) CompleteCeremony(ctx context.Context, req *connect.Request[ceremonyv1.CompleteCeremonyRequest]) (*connect.Response[ceremonyv1.CompleteCeremonyResponse], error) {
	o := s.o
	who, err := o.caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := o.partyCeremony(ctx, req.Msg.GetCeremonyId(), who)
	if err != nil {
		return nil, err
	}
	if c.State == store.CeremonySucceeded && slices.Contains(c.Parties, who.Name) {
		// Another party's result already finished it; nothing to add.
		return connect.NewResponse(&ceremonyv1.CompleteCeremonyResponse{State: stateToProto(c.State)}), nil
	}
	if c, err = o.runningParty(ctx, c.ID, who); err != nil {
		return nil, err
	}
	p, err := o.cfg.Protocols.Lookup(c)
	if err != nil {
		return nil, o.reportError(ctx, err)
	}
	output, err := p.Output(req.Msg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	if err := o.complete(ctx, c, who.Name, output); err != nil {
		return nil, o.reportError(ctx, err)
	}
	return connect.NewResponse(&ceremonyv1.CompleteCeremonyResponse{State: o.stateOf(ctx, c.ID)}), nil
}

func (s *ceremonyService) FailCeremony(ctx context.Context, req *connect.Request[ceremonyv1.FailCeremonyRequest]) (*connect.Response[ceremonyv1.FailCeremonyResponse], error) {
	o := s.o
	who, err := o.caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := o.runningParty(ctx, req.Msg.GetCeremonyId(), who)
	if err != nil {
		return nil, err
	}
	if err := o.fail(ctx, c, who.Name, req.Msg.GetReason(), req.Msg.GetCulprits(), req.Msg.GetRejected()); err != nil {
		return nil, o.reportError(ctx, err)
	}
	return connect.NewResponse(&ceremonyv1.FailCeremonyResponse{State: o.stateOf(ctx, c.ID)}), nil
}

func (o *Orchestrator) stateOf(ctx context.Context, id string) ceremonyv1.CeremonyState {
	c, err := o.store.GetCeremony(ctx, id)
	if err != nil {
		return ceremonyv1.CeremonyState_CEREMONY_STATE_UNSPECIFIED
	}
	return stateToProto(c.State)
}

func (o *Orchestrator) reportError(ctx context.Context, err error) error {
	return wire.ToConnect(ctx, o.logger, fmt.Errorf("ceremony report: %w", err))
}
