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
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

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
)

// errRejected marks a request this signer refuses to sign (as opposed to
// failing to): the coordinator then rejects the request instead of
// retrying it with another quorum.
var errRejected = errors.New("rejected")

// runCeremony runs one ceremony to its end and reports the outcome.
func (s *Signer) runCeremony(ctx context.Context, c *ceremonyv1.Ceremony) {
	kind := "keygen"
	if c.GetKind() == ceremonyv1.CeremonyKind_CEREMONY_KIND_SIGN {
		kind = "sign"
	}
	log := s.logger.With("ceremony", c.GetId(), "kind", kind, "wallet", c.GetWalletId())
	log.InfoContext(ctx, "ceremony received", "parties", c.GetParties())
	start := time.Now()
	output, err := s.execute(ctx, c)
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
		if kind == "keygen" && connect.CodeOf(err) == connect.CodeFailedPrecondition {
			// The key generation ended without us: the share must not live on.
			s.settle(rctx, c.GetWalletId(), c.GetId(), ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED)
		}
		return
	}
	s.metrics.ceremonies.WithLabelValues(kind, "ok").Inc()
	log.InfoContext(ctx, "ceremony done", "duration", time.Since(start).Round(time.Millisecond))
	if kind == "keygen" {
		s.settle(rctx, c.GetWalletId(), c.GetId(), res.Msg.GetState())
	}
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
	case errors.Is(err, errNotParty), errors.Is(err, errBadPeers), errors.Is(err, guard.ErrGateFailed):
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

// execute checks the ceremony, runs the protocol, and returns the report.
func (s *Signer) execute(ctx context.Context, c *ceremonyv1.Ceremony) (*ceremonyv1.CompleteCeremonyRequest, error) {
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
	var out *ceremonyv1.CompleteCeremonyRequest
	switch c.GetKind() {
	case ceremonyv1.CeremonyKind_CEREMONY_KIND_KEYGEN:
		out, err = s.keygen(ctx, c, parties, tr)
	case ceremonyv1.CeremonyKind_CEREMONY_KIND_SIGN:
		out, err = s.sign(ctx, c, parties, tr)
	default:
		return nil, fmt.Errorf("unknown ceremony kind %v", c.GetKind())
	}
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

func (s *Signer) keygen(ctx context.Context, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if sh, err := s.shares.get(ctx, c.GetWalletId()); err == nil {
		if sh.KeygenCeremonyID == c.GetId() {
			// This signer finished this very key generation before a restart
			// and its report may have been lost: report the stored key again.
			return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
				Output: &ceremonyv1.CompleteCeremonyRequest_Keygen{Keygen: &ceremonyv1.KeygenOutput{PublicKey: sh.PublicKey}}}, nil
		}
		return nil, fmt.Errorf("this signer already holds a share of wallet %s", c.GetWalletId())
	}
	cfg, err := s.runner.Keygen(ctx, []byte(c.GetId()), party.ID(s.name), parties, int(c.GetThreshold()), tr)
	if err != nil {
		return nil, err
	}
	pub, err := mpc.PublicKey(cfg)
	if err != nil {
		return nil, err
	}
	plain, err := cfg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode share: %w", err)
	}
	sealed, err := s.kek.Seal(c.GetWalletId(), s.name, plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("seal share: %w", err)
	}
	// Durable before anyone is told the key exists.
	if err := s.shares.putPending(ctx, c.GetWalletId(), c.GetId(), pub, sealed); err != nil {
		return nil, err
	}
	return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
		Output: &ceremonyv1.CompleteCeremonyRequest_Keygen{Keygen: &ceremonyv1.KeygenOutput{PublicKey: pub}}}, nil
}

func (s *Signer) sign(ctx context.Context, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error) {
	if err := s.authorize(ctx, c); err != nil {
		return nil, err
	}
	if err := checkDigest(c); err != nil {
		return nil, err
	}
	cfg, err := s.loadShare(ctx, c.GetWalletId(), c.GetPublicKey())
	if err != nil {
		return nil, err
	}
	sig, err := s.runner.Sign(ctx, []byte(c.GetId()), cfg, parties, c.GetDigest(), tr)
	if err != nil {
		return nil, err
	}
	out, err := mpc.ToSignature(sig, c.GetPublicKey(), c.GetDigest())
	if err != nil {
		return nil, err
	}
	return &ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.GetId(),
		Output: &ceremonyv1.CompleteCeremonyRequest_Sign{Sign: &ceremonyv1.SignOutput{Signature: append(out.R[:], out.S[:]...)}}}, nil
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
	default:
		return fmt.Errorf("%w: unknown signature kind %v", errRejected, c.GetSignatureKind())
	}
	if len(want) != 32 || !bytes.Equal(want, c.GetDigest()) {
		return fmt.Errorf("%w: the digest does not match the payload", errRejected)
	}
	return nil
}

// loadShare decrypts this signer's share of a wallet, refusing a share
// whose key generation is not known to have succeeded.
func (s *Signer) loadShare(ctx context.Context, walletID string, pub []byte) (*cmp.Config, error) {
	sh, err := s.shares.get(ctx, walletID)
	if err != nil {
		return nil, err
	}
	if sh.State != shareActive {
		s.resolvePending(ctx)
		if sh, err = s.shares.get(ctx, walletID); err != nil {
			return nil, err
		}
		if sh.State != shareActive {
			return nil, fmt.Errorf("the share of wallet %s is from a key generation not known to have succeeded", walletID)
		}
	}
	if !bytes.Equal(sh.PublicKey, pub) {
		return nil, fmt.Errorf("the share of wallet %s is for another public key", walletID)
	}
	plain, err := s.kek.Open(walletID, s.name, sh.Sealed)
	if err != nil {
		return nil, fmt.Errorf("decrypt share of wallet %s: %w", walletID, err)
	}
	defer clear(plain)
	cfg := cmp.EmptyConfig(curve.Secp256k1{})
	if err := cfg.UnmarshalBinary(plain); err != nil {
		return nil, fmt.Errorf("decode share of wallet %s: %w", walletID, err)
	}
	return cfg, nil
}
