package reqsig

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Defaults, defined once for flags, dev mode and library.
const (
	// DefaultMaxAge is how old a signed request may be when a node checks it.
	DefaultMaxAge = 10 * time.Minute
	// MaxClockSkew is how far in the future a request's create time may be.
	MaxClockSkew = time.Minute
)

// Refusals of Policy.Verify, beyond ErrMalformed and ErrBadSignature.
var (
	ErrUnsigned  = errors.New("the request is not signed, and signed requests are required")
	ErrUntrusted = errors.New("the request is signed by a key this node does not trust")
	ErrExpired   = errors.New("the signed request is expired")
	ErrMismatch  = errors.New("the signed request does not match what is to be signed")
)

// Expected is what a node is asked to sign, which the signed request must
// match field for field. Digest is the node's own computation from the
// payload.
type Expected struct {
	WalletID, Kind string
	Digest         []byte
	ExternalID     string
}

// Policy is a node's rule for signed requests.
type Policy struct {
	// Trusted are the keys this node trusts. When it has any, every
	// request must be signed by one of them.
	Trusted *Trusted
	// Require refuses unsigned requests even without trusted keys; then
	// any key with a valid signature is accepted (the coordinator's early
	// check). Signers and drivers must configure Trusted with it.
	Require bool
	// MaxAge bounds a request's age (default DefaultMaxAge).
	MaxAge time.Duration
}

// Required reports whether unsigned requests are refused.
func (p Policy) Required() bool { return p.Require || p.Trusted.Len() > 0 }

// Verified is the outcome of an accepted check.
type Verified struct {
	// Request is the signed request, nil for an accepted unsigned one.
	Request *Request
	// KeyName is the trusted key's name, the key's fingerprint when this
	// node trusts no keys, or "" for an unsigned request.
	KeyName string
}

// Verify decodes and checks signed-request bytes (nil for an unsigned
// request) against what is to be signed, at time now. An error says why
// the request is refused; the Verified it returns alongside carries what
// could be learned (the request, the key name) for the journal.
func (p Policy) Verify(envelope []byte, want Expected, now time.Time) (*Verified, error) {
	v := &Verified{}
	if len(envelope) == 0 {
		if p.Required() {
			return v, ErrUnsigned
		}
		return v, nil
	}
	r, sig, err := Decode(envelope)
	if err != nil {
		return v, err
	}
	v.Request = r
	name, trusted := p.Trusted.Name(r.Algorithm, r.PublicKey)
	switch {
	case trusted:
		v.KeyName = name
	case p.Trusted.Len() > 0:
		v.KeyName = Fingerprint(r.Algorithm, r.PublicKey)
		return v, fmt.Errorf("%w (%s)", ErrUntrusted, v.KeyName)
	default:
		v.KeyName = Fingerprint(r.Algorithm, r.PublicKey)
	}
	if err := r.Verify(sig); err != nil {
		return v, err
	}
	return v, p.checkFields(r, want, now)
}

func (p Policy) checkFields(r *Request, want Expected, now time.Time) error {
	switch {
	case r.WalletID != want.WalletID:
		return fmt.Errorf("%w: it is for wallet %s", ErrMismatch, r.WalletID)
	case r.Kind != want.Kind:
		return fmt.Errorf("%w: it is for kind %s, not %s", ErrMismatch, r.Kind, want.Kind)
	case !bytes.Equal(r.Digest, want.Digest):
		return fmt.Errorf("%w: it is for another digest", ErrMismatch)
	case r.ExternalID != want.ExternalID:
		return fmt.Errorf("%w: it is for external id %q", ErrMismatch, r.ExternalID)
	}
	maxAge := p.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if age := now.Sub(r.Created); age > maxAge {
		return fmt.Errorf("%w: signed %s ago, more than %s", ErrExpired, age.Round(time.Second), maxAge)
	}
	if r.Created.Sub(now) > MaxClockSkew {
		return fmt.Errorf("%w: its create time is %s in the future", ErrExpired, r.Created.Sub(now).Round(time.Second))
	}
	return nil
}

// NodePolicy is the policy of a signer or HSM driver from its flags. A
// node that requires signed requests must name the keys it trusts: the
// coordinator's word for a key counts for nothing at a signer.
func NodePolicy(trustedFile string, require bool, maxAge time.Duration) (Policy, error) {
	p := Policy{Require: require, MaxAge: maxAge}
	if trustedFile == "" {
		if require {
			return p, errors.New("--require-signed-requests needs --trusted-request-keys: this node must know which request keys it trusts")
		}
		return p, nil
	}
	t, err := LoadTrusted(trustedFile)
	if err != nil {
		return p, fmt.Errorf("--trusted-request-keys: %w", err)
	}
	if t.Len() == 0 {
		return p, fmt.Errorf("--trusted-request-keys %s: no keys in it", trustedFile)
	}
	p.Trusted = t
	return p, nil
}
