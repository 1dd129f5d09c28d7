// Package guard is where a signer or an HSM driver decides whether it signs:
// it recomputes the digest from the payload, verifies the application's
// signed request against the keys the node trusts (reqsig), refuses a
// replayed request id, asks the operator's validation gate (gate), and
// journals the decision (journal) before the node releases anything. The
// signer calls it once per signing ceremony, the driver once per sign job
// before it unwraps the key: one place each.
package guard

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/gate"
	"github.com/sigil-wallet/sigil/internal/journal"
	"github.com/sigil-wallet/sigil/internal/reqsig"
)

// Config is a node's signing policy.
type Config struct {
	// Node is the signer's or driver's name, as the gate and the journal
	// know it.
	Node string
	// Policy says which request keys the node trusts and whether requests
	// must be signed.
	Policy reqsig.Policy
	// Gate is the validation gate; nil when none is configured.
	Gate *gate.Client
	// Journal records every decision; required.
	Journal *journal.Journal
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Guard decides.
type Guard struct{ cfg Config }

// Node is the name of the node the guard decides for.
func (g *Guard) Node() string { return g.cfg.Node }

// New returns a guard.
func New(cfg Config) *Guard {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{cfg: cfg}
}

// Request is what the node is asked to sign, as the coordinator sent it.
type Request struct {
	// WorkID is the ceremony or job id.
	WorkID, SignatureID, WalletID string
	// PublicKey is the wallet's public key, of KeyScheme ("" is
	// ecdsa-secp256k1; "schnorr-secp256k1" and "ed25519" are 32 bytes).
	PublicKey []byte
	KeyScheme string
	Kind      walletv1.SignatureKind
	// Payload is the hash or the message bytes; Digest what would be
	// signed.
	Payload, Digest []byte
	ExternalID      string
	// SignedRequest is the application's signed request; nil if unsigned.
	SignedRequest []byte
}

// Refusal is a decision not to sign: the request is REJECTED, not retried
// elsewhere. Its text is safe to pass to the application.
type Refusal struct {
	Decision journal.Decision
	Reason   string
}

func (r *Refusal) Error() string { return r.Reason }

// ErrGateFailed wraps a validation gate that could not be asked: nothing is
// signed, but another node (with a working gate) may be.
var ErrGateFailed = errors.New("validation gate unavailable")

// Authorize returns nil when the node may sign, after the decision is
// journaled durably; a *Refusal when it refuses; an error wrapping
// ErrGateFailed when the gate could not be asked; any other error when the
// journal could not be written (nothing may be signed then either).
func (g *Guard) Authorize(ctx context.Context, r *Request) error {
	e := journal.Entry{Node: g.cfg.Node, WorkID: r.WorkID, SignatureID: r.SignatureID, WalletID: r.WalletID, Digest: hex.EncodeToString(r.Digest)}
	kind, digest, err := recompute(r.Kind, r.Payload)
	if err != nil || (kind != reqsig.KindRaw && !bytes.Equal(digest, r.Digest)) {
		if err == nil {
			err = errors.New("the digest does not match the payload")
		}
		return g.refuse(ctx, e, journal.RefusedPolicy, err.Error())
	}
	v, err := g.cfg.Policy.Verify(r.SignedRequest, reqsig.Expected{WalletID: r.WalletID, Kind: kind, Digest: digest, ExternalID: r.ExternalID}, g.cfg.Now())
	if v.Request != nil {
		e.RequestID = v.Request.RequestID
	}
	e.RequesterKey = v.KeyName
	if err != nil {
		return g.refuse(ctx, e, journal.RefusedSignature, "request signature: "+err.Error())
	}
	if g.cfg.Gate != nil {
		if err := g.cfg.Gate.Check(ctx, g.gateRequest(r, kind, e)); err != nil {
			var refusal *gate.Refusal
			if errors.As(err, &refusal) {
				return g.refuse(ctx, e, journal.RefusedGate, "the validation gate refused: "+refusal.Reason)
			}
			e.Decision, e.Reason = journal.GateFailed, err.Error()
			g.record(ctx, e)
			return fmt.Errorf("%w: %w (fail closed: nothing signed)", ErrGateFailed, err)
		}
	}
	e.Decision = journal.Signed
	if _, err := g.cfg.Journal.Append(ctx, e); err != nil {
		if errors.Is(err, journal.ErrReplay) {
			return g.refuse(ctx, e, journal.RefusedSignature, "request signature: "+err.Error())
		}
		return fmt.Errorf("journal the decision: %w", err)
	}
	g.cfg.Logger.InfoContext(ctx, "signature request approved", "signature", r.SignatureID, "wallet", r.WalletID,
		"request_id", e.RequestID, "requester_key", e.RequesterKey)
	return nil
}

func (g *Guard) refuse(ctx context.Context, e journal.Entry, d journal.Decision, reason string) error {
	e.Decision, e.Reason = d, reason
	g.record(ctx, e)
	return &Refusal{Decision: d, Reason: reason}
}

// record journals a refusal; failing to does not turn it into a signature.
func (g *Guard) record(ctx context.Context, e journal.Entry) {
	g.cfg.Logger.WarnContext(ctx, "signature request refused", "signature", e.SignatureID, "wallet", e.WalletID,
		"decision", e.Decision, "reason", e.Reason, "request_id", e.RequestID, "requester_key", e.RequesterKey)
	if _, err := g.cfg.Journal.Append(ctx, e); err != nil {
		g.cfg.Logger.ErrorContext(ctx, "journal a refusal", "signature", e.SignatureID, "error", err)
	}
}

func (g *Guard) gateRequest(r *Request, kind string, e journal.Entry) *gate.Request {
	gr := &gate.Request{
		Signer: g.cfg.Node, SignatureID: r.SignatureID, RequestID: e.RequestID, WalletID: r.WalletID,
		PublicKey: hex.EncodeToString(r.PublicKey), Kind: kind, Digest: e.Digest, ExternalID: r.ExternalID,
		RequesterKey: e.RequesterKey, Signed: e.RequestID != "",
	}
	switch kind {
	case reqsig.KindHash:
		gr.Hash = hex.EncodeToString(r.Payload)
	case reqsig.KindRaw:
		gr.RawMessage = hex.EncodeToString(r.Payload)
	default:
		gr.Message = string(r.Payload)
	}
	switch r.KeyScheme {
	case "schnorr-secp256k1":
		gr.Addresses.BitcoinP2TR, _ = address.BitcoinP2TR(r.PublicKey, "bc")
	case "ed25519":
		gr.Addresses.Solana, _ = address.Solana(r.PublicKey)
	default:
		gr.Addresses.Ethereum, _ = address.Ethereum(r.PublicKey)
		gr.Addresses.BitcoinP2WPKH, _ = address.BitcoinP2WPKH(r.PublicKey, "bc")
	}
	return gr
}

// recompute derives the digest from what the application asked to sign.
func recompute(k walletv1.SignatureKind, payload []byte) (string, []byte, error) {
	switch k {
	case walletv1.SignatureKind_SIGNATURE_KIND_HASH:
		if len(payload) != 32 {
			return "", nil, errors.New("a hash to sign must be 32 bytes")
		}
		return reqsig.KindHash, payload, nil
	case walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE:
		return reqsig.KindEIP191, address.EIP191Digest(payload), nil
	case walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE:
		// The message itself is signed (Ed25519): the signers get no digest,
		// and the signed request binds the message's SHA-256.
		if len(payload) == 0 {
			return "", nil, errors.New("a raw message to sign must not be empty")
		}
		return reqsig.KindRaw, reqsig.RawDigest(payload), nil
	default:
		return "", nil, fmt.Errorf("unknown signature kind %v", k)
	}
}
