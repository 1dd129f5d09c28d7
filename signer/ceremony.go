package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/seal"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

// errCeremonyEnded stops a protocol whose ceremony the coordinator already
// ended.
var errCeremonyEnded = errors.New("the coordinator ended the ceremony")

// Errors whose text is safe to pass on: they describe the ceremony, not
// the signer's internals.
var (
	errNotParty = errors.New("this signer is not a party of the ceremony")
	errBadPeers = errors.New("the peers' announcements do not verify against the signer CA")
	// errUnsupported: a ceremony kind or key scheme this signer does not run.
	errUnsupported = errors.New("unsupported ceremony")
)

// errRejected marks a request this signer refuses to sign (as opposed to
// failing to): the coordinator then rejects the request instead of
// retrying it with another quorum.
var errRejected = errors.New("rejected")

// runCeremony runs one ceremony to its end and reports the outcome.
func (s *Signer) runCeremony(ctx context.Context, c *ceremonyv1.Ceremony) {
	p, err := s.protocols.lookup(c)
	if err != nil {
		s.logger.WarnContext(ctx, "ceremony refused", "ceremony", c.GetId(), "error", err)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		s.reportFailure(rctx, c, err)
		return
	}
	kind := p.label()
	log := s.logger.With("ceremony", c.GetId(), "kind", kind, "wallet", c.GetWalletId())
	log.InfoContext(ctx, "ceremony received", "parties", c.GetParties())
	start := time.Now()
	output, err := s.execute(ctx, c, p)
	s.metrics.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	// Reports must reach the coordinator even when the ceremony's own
	// deadline has passed.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err != nil {
		s.metrics.ceremonies.WithLabelValues(kind, "failed").Inc()
		if (ctx.Err() != nil && errors.Is(err, context.Canceled)) || errors.Is(err, errCeremonyEnded) {
			log.InfoContext(ctx, "ceremony stopped by the coordinator")
			return
		}
		log.WarnContext(ctx, "ceremony failed", "error", err)
		s.reportFailure(rctx, c, err)
		return
	}
	res, err := retryReport(rctx, func(ctx context.Context) (*connect.Response[ceremonyv1.CompleteCeremonyResponse], error) {
		return s.ceremony.CompleteCeremony(ctx, connect.NewRequest(output))
	})
	if err != nil {
		log.WarnContext(ctx, "result not accepted", "error", err)
		if connect.CodeOf(err) == connect.CodeFailedPrecondition {
			// The ceremony ended without us: what it yielded must not live on.
			p.settle(rctx, s, c, ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED)
		}
		return
	}
	s.metrics.ceremonies.WithLabelValues(kind, "ok").Inc()
	log.InfoContext(ctx, "ceremony done", "duration", time.Since(start).Round(time.Millisecond))
	p.settle(rctx, s, c, res.Msg.GetState())
}

// retryReport sends a report again while the coordinator is briefly
// unreachable: a lost report would fail a ceremony this signer finished.
func retryReport[T any](ctx context.Context, call func(context.Context) (*connect.Response[T], error)) (*connect.Response[T], error) {
	backoff := 200 * time.Millisecond
	for {
		res, err := call(ctx)
		if err == nil || !retryable(err) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Signer) reportFailure(ctx context.Context, c *ceremonyv1.Ceremony, cause error) {
	req := &ceremonyv1.FailCeremonyRequest{CeremonyId: c.GetId(), Reason: failureReason(cause), Rejected: errors.Is(cause, errRejected)}
	var abort *mpc.AbortError
	if errors.As(cause, &abort) {
		for _, p := range abort.Culprits {
			req.Culprits = append(req.Culprits, string(p))
		}
	}
	_, err := retryReport(ctx, func(ctx context.Context) (*connect.Response[ceremonyv1.FailCeremonyResponse], error) {
		return s.ceremony.FailCeremony(ctx, connect.NewRequest(req))
	})
	if err != nil {
		s.logger.WarnContext(ctx, "failure report not accepted", "ceremony", c.GetId(), "error", err)
	}
}

// failureReason is what the coordinator (and, through it, the application)
// learns of a failure: a category, never this signer's internals (paths,
// database or key errors), which stay in its own log.
func failureReason(err error) string {
	var abort *mpc.AbortError
	switch {
	case errors.Is(err, errRejected):
		return truncate(err.Error(), 1024)
	case errors.As(err, &abort):
		return "the protocol aborted" + culpritText(abort)
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out waiting for the other signers"
	case errors.Is(err, ErrNoShare):
		return "this signer holds no share of the wallet"
	case errors.Is(err, errPresigUnavailable):
		return errPresigUnavailable.Error()
	case errors.Is(err, errNotParty), errors.Is(err, errBadPeers), errors.Is(err, errUnsupported), errors.Is(err, guard.ErrGateFailed):
		return truncate(err.Error(), 1024)
	default:
		return "local error at the signer (see its log)"
	}
}

func culpritText(a *mpc.AbortError) string {
	if len(a.Culprits) == 0 {
		return ""
	}
	names := make([]string, len(a.Culprits))
	for i, p := range a.Culprits {
		names[i] = string(p)
	}
	return " (blamed: " + strings.Join(names, ", ") + ")"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// execute checks the ceremony, runs its protocol, and returns the report.
func (s *Signer) execute(ctx context.Context, c *ceremonyv1.Ceremony, p ceremonyProtocol) (*ceremonyv1.CompleteCeremonyRequest, error) {
	parties := make([]party.ID, 0, len(c.GetParties()))
	for _, p := range c.GetParties() {
		parties = append(parties, party.ID(p))
	}
	if !slices.Contains(c.GetParties(), s.name) {
		return nil, errNotParty
	}
	sess, err := s.session(c)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	tr := newRelayTransport(ctx, s, c.GetId(), sess, func() { stop(errCeremonyEnded) })
	defer tr.close()
	out, err := p.run(ctx, s, c, parties, tr)
	if err != nil && errors.Is(context.Cause(ctx), errCeremonyEnded) {
		return nil, errCeremonyEnded
	}
	return out, err
}

// session verifies every party's announcement against the signer CA: the
// coordinator relays them but cannot forge them.
func (s *Signer) session(c *ceremonyv1.Ceremony) (*seal.Session, error) {
	peers := map[string]*seal.Peer{}
	for _, a := range c.GetPeers() {
		p, err := seal.VerifyAnnouncement(a.GetAnnouncement(), s.peerRoots, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errBadPeers, a.GetSigner(), err)
		}
		if p.Name != a.GetSigner() {
			return nil, fmt.Errorf("%w: the one relayed as %s is signed by %s", errBadPeers, a.GetSigner(), p.Name)
		}
		peers[p.Name] = p
	}
	for _, name := range c.GetParties() {
		if _, ok := peers[name]; !ok && name != s.name {
			return nil, fmt.Errorf("%w: none for party %s", errBadPeers, name)
		}
	}
	return seal.NewSession(s.identity, c.GetId(), peers)
}

// checkDigest recomputes the digest from what the application asked to
// sign: a signer signs nothing it cannot account for.
func checkDigest(c *ceremonyv1.Ceremony) error {
	var want []byte
	switch c.GetSignatureKind() {
	case walletv1.SignatureKind_SIGNATURE_KIND_HASH:
		want = c.GetPayload()
	case walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE:
		want = address.EIP191Digest(c.GetPayload())
	case walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE:
		// The message itself is signed: there is no digest to check.
		if len(c.GetPayload()) == 0 || len(c.GetDigest()) != 0 {
			return fmt.Errorf("%w: a raw message needs a payload and no digest", errRejected)
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown signature kind %v", errRejected, c.GetSignatureKind())
	}
	if len(want) != 32 || !bytes.Equal(want, c.GetDigest()) {
		return fmt.Errorf("%w: the digest does not match the payload", errRejected)
	}
	return nil
}
