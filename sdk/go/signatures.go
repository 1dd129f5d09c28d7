package sigil

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
)

// CreateSignatureOptions describe a signature request: WalletID and exactly
// one of Hash, Message and RawMessage. ECDSA wallets sign hashes and
// messages, Schnorr (Taproot) wallets 32-byte hashes (sighashes), Ed25519
// wallets message bytes only.
type CreateSignatureOptions struct {
	// WalletID is the ACTIVE wallet that signs.
	WalletID string
	// Hash is a 32-byte hash, signed as is.
	Hash []byte
	// Message is signed as an EIP-191 personal message (what personal_sign
	// does): the digest is keccak256("\x19Ethereum Signed Message:\n" +
	// len(message) + message).
	Message string
	// RawMessage is message bytes signed as they are, by Ed25519 wallets
	// (RFC 8032): Result.Ed25519 is then the 64-byte signature.
	RawMessage []byte
	// ExternalID is an idempotency key, as for wallets: the same request
	// returns the same signature request.
	ExternalID string
	// RequestID is the signed request's id when the client has a request
	// key (WithRequestKey); empty means a fresh random one.
	RequestID string
}

// SignatureWaitOptions tune WaitSignature and the Sign helpers. The zero
// value is ready to use.
type SignatureWaitOptions struct {
	// PollInterval is the first pause between two reads (default
	// DefaultPollInterval); it grows by half each read up to
	// MaxPollInterval (default DefaultMaxPollInterval).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// Timeout bounds the whole wait (default DefaultSignatureWait;
	// negative: only the context's deadline).
	Timeout time.Duration
	// Progress, when set, is called with each state read and the time since
	// the request was made.
	Progress func(s *walletv1.Signature, elapsed time.Duration)
}

// SignOptions tune SignHash and SignMessage.
type SignOptions struct {
	// ExternalID is an idempotency key: the same request returns the same
	// signature request.
	ExternalID string
	// Wait tunes the wait for the result.
	Wait SignatureWaitOptions
}

// ListSignaturesOptions filter and page Signatures. The zero value lists
// every signature request of every wallet.
type ListSignaturesOptions struct {
	// WalletID keeps only the requests of this wallet; empty means all.
	WalletID string
	// PageSize is how many requests each call fetches, 1 to 1000; 0 means
	// the server's default (100).
	PageSize int32
	// PageToken starts from this page instead of the first.
	PageToken string
}

// CreateSignature asks a wallet for a signature and returns the request,
// usually PENDING; WaitSignature waits for its result. It checks that
// exactly one of Hash (32 bytes), Message and RawMessage is set before any call, with
// connect.CodeInvalidArgument. A wallet that is not ACTIVE gives
// connect.CodeFailedPrecondition. Needs the signatures:write scope.
func (c *Client) CreateSignature(ctx context.Context, opts CreateSignatureOptions) (*walletv1.Signature, error) {
	req := &walletv1.CreateSignatureRequest{WalletId: opts.WalletID, ExternalId: opts.ExternalID}
	set := 0
	for _, given := range []bool{opts.Hash != nil, opts.Message != "", opts.RawMessage != nil} {
		if given {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, invalid("give one of a hash, a message or a raw message to sign, not several")
	case opts.RawMessage != nil:
		if len(opts.RawMessage) == 0 {
			return nil, invalid("the raw message to sign is empty")
		}
		req.Payload = &walletv1.CreateSignatureRequest_RawMessage{RawMessage: opts.RawMessage}
	case opts.Hash != nil:
		if len(opts.Hash) != 32 {
			return nil, invalid(fmt.Sprintf("a hash to sign must be 32 bytes, got %d", len(opts.Hash)))
		}
		req.Payload = &walletv1.CreateSignatureRequest_Hash{Hash: opts.Hash}
	case opts.Message != "":
		req.Payload = &walletv1.CreateSignatureRequest_Message{Message: opts.Message}
	default:
		return nil, invalid("nothing to sign: give a 32-byte hash, a non-empty message or raw message bytes")
	}
	if c.requestKey != nil {
		if err := c.requestKey.Sign(req, opts.RequestID, time.Now()); err != nil {
			return nil, invalid("sign the request: " + err.Error())
		}
	}
	res, err := c.service.CreateSignature(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return must(res.Msg.GetSignature(), "signature")
}

// WaitSignature reads a signature request until it ends and returns it
// SIGNED, its Result set. If it was REJECTED or FAILED, WaitSignature
// returns it with a *SignatureFailedError. It stops with
// connect.CodeDeadlineExceeded after opts.Timeout (default 2 minutes) and
// connect.CodeCanceled when ctx is canceled.
func (c *Client) WaitSignature(ctx context.Context, id string, opts SignatureWaitOptions) (*walletv1.Signature, error) {
	return c.waitSignature(ctx, id, opts, time.Now())
}

func (c *Client) waitSignature(ctx context.Context, id string, opts SignatureWaitOptions, started time.Time) (*walletv1.Signature, error) {
	var progress func(*walletv1.Signature, time.Duration)
	if opts.Progress != nil {
		progress = func(s *walletv1.Signature, _ time.Duration) { opts.Progress(s, time.Since(started)) }
	}
	s, err := poll(ctx, c.pollConfig(opts.PollInterval, opts.MaxPollInterval, opts.Timeout, DefaultSignatureWait),
		func(ctx context.Context, hold time.Duration) (*walletv1.Signature, error) {
			return c.getSignature(ctx, id, hold)
		},
		signatureSettled,
		func(s *walletv1.Signature, ok bool) string {
			if !ok {
				return "signature " + id + " not read yet"
			}
			return fmt.Sprintf("signature %s is still %s", id, SignatureStatusName(s.GetStatus()))
		},
		progress)
	if err != nil {
		return nil, err
	}
	return settledSignature(s)
}

// SignHash asks a wallet to sign a 32-byte hash as is and waits for the
// result, as CreateSignature followed by WaitSignature.
func (c *Client) SignHash(ctx context.Context, walletID string, hash []byte, opts SignOptions) (*walletv1.Signature, error) {
	if hash == nil {
		hash = []byte{}
	}
	return c.signAndWait(ctx, CreateSignatureOptions{WalletID: walletID, Hash: hash, ExternalID: opts.ExternalID}, opts.Wait)
}

// SignMessage asks a wallet to sign message as an EIP-191 personal message
// and waits for the result: Result.Ethereum is then what personal_sign
// returns, and recovers the wallet's Ethereum address.
func (c *Client) SignMessage(ctx context.Context, walletID, message string, opts SignOptions) (*walletv1.Signature, error) {
	if message == "" {
		return nil, invalid("the message to sign is empty")
	}
	return c.signAndWait(ctx, CreateSignatureOptions{WalletID: walletID, Message: message, ExternalID: opts.ExternalID}, opts.Wait)
}

// SignRawMessage asks an Ed25519 wallet to sign message bytes as they are
// (RFC 8032) and waits for the result: Result.Ed25519 is the 64-byte
// signature, e.g. of a Solana transaction message.
func (c *Client) SignRawMessage(ctx context.Context, walletID string, message []byte, opts SignOptions) (*walletv1.Signature, error) {
	if len(message) == 0 {
		return nil, invalid("the message to sign is empty")
	}
	return c.signAndWait(ctx, CreateSignatureOptions{WalletID: walletID, RawMessage: message, ExternalID: opts.ExternalID}, opts.Wait)
}

func (c *Client) signAndWait(ctx context.Context, req CreateSignatureOptions, wait SignatureWaitOptions) (*walletv1.Signature, error) {
	started := time.Now()
	s, err := c.CreateSignature(ctx, req)
	if err != nil {
		return nil, err
	}
	if wait.Progress != nil {
		wait.Progress(s, time.Since(started))
	}
	if signatureSettled(s) {
		return settledSignature(s)
	}
	return c.waitSignature(ctx, s.GetId(), wait, started)
}

// GetSignature returns one signature request; connect.CodeNotFound
// (IsNotFound) if there is none with this id. Needs the wallets:read scope.
func (c *Client) GetSignature(ctx context.Context, id string) (*walletv1.Signature, error) {
	return c.getSignature(ctx, id, 0)
}

// getSignature reads a signature request, asking the server to hold the
// call up to hold while it is pending.
func (c *Client) getSignature(ctx context.Context, id string, hold time.Duration) (*walletv1.Signature, error) {
	res, err := c.service.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: id, Wait: holdField(hold)}))
	if err != nil {
		return nil, err
	}
	return must(res.Msg.GetSignature(), "signature")
}

// Signatures iterates over signature requests, oldest first, optionally of
// one wallet, fetching pages as the loop goes. An error ends the iteration:
// it is yielded with a nil signature. Needs the wallets:read scope.
func (c *Client) Signatures(ctx context.Context, opts ListSignaturesOptions) iter.Seq2[*walletv1.Signature, error] {
	return pages(ctx, opts.PageToken, func(ctx context.Context, token string) ([]*walletv1.Signature, string, error) {
		res, err := c.service.ListSignatures(ctx, connect.NewRequest(&walletv1.ListSignaturesRequest{
			WalletId: opts.WalletID, PageSize: opts.PageSize, PageToken: token,
		}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetSignatures(), res.Msg.GetNextPageToken(), nil
	})
}

// SignatureStatusName is a signature status without its enum prefix:
// PENDING, SIGNED, REJECTED, FAILED.
func SignatureStatusName(s walletv1.SignatureStatus) string {
	return strings.TrimPrefix(s.String(), "SIGNATURE_STATUS_")
}

func signatureSettled(s *walletv1.Signature) bool {
	st := s.GetStatus()
	return st != walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING && st != walletv1.SignatureStatus_SIGNATURE_STATUS_UNSPECIFIED
}

func settledSignature(s *walletv1.Signature) (*walletv1.Signature, error) {
	if s.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
		return s, nil
	}
	return s, &SignatureFailedError{Signature: s}
}

func invalid(msg string) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("sigil: %s", msg))
}
