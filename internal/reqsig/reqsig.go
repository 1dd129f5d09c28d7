// Package reqsig is the verifying side of signed requests: the canonical,
// domain-separated bytes an application signs with its request key for
// every CreateSignature, the signed-request envelope the coordinator hands
// to signers and HSM drivers, and its verification against the keys a node
// trusts from its own configuration.
//
// The signing side lives in the Go SDK (sdk/go, requestkey.go) and the
// TypeScript SDK (sdk/ts/src/requestkey.ts): the SDK is a Go module of its
// own and must not import server packages, so the encoding (a few dozen
// lines, no dependencies) exists in three places. The golden vectors in
// sdk/testdata/request-signing-vectors.json, checked by the tests of all
// three, keep them byte for byte the same.
//
// Canonical bytes (version 1):
//
//	"sigil/signature-request/v1\x00"
//	then, each as a 4-byte big-endian length and its bytes, in this order:
//	algorithm ("ed25519" or "ecdsa-p256-sha256"), public key, request id,
//	create time (8 bytes: big-endian Unix milliseconds), wallet id,
//	kind ("hash" or "eip191"), digest (32 bytes), external id.
//
// The envelope is the canonical bytes followed by the signature, also
// length-prefixed; nothing may follow.
package reqsig

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"time"
)

// Domain separates request signatures from anything else a key might sign.
const Domain = "sigil/signature-request/v1\x00"

// Algorithms, as named in the canonical bytes.
const (
	Ed25519   = "ed25519"
	ECDSAP256 = "ecdsa-p256-sha256"
)

// Kinds, as named in the canonical bytes.
const (
	KindHash   = "hash"
	KindEIP191 = "eip191"
	// KindRaw is message bytes signed as they are (Ed25519); the digest a
	// request signature binds is the SHA-256 of the message (RawDigest).
	KindRaw = "raw-message"
)

// Bounds of the decoder.
const (
	maxField     = 256
	SignatureLen = 64
)

// ErrMalformed reports signed-request bytes that do not decode.
var ErrMalformed = errors.New("malformed signed request")

// ErrBadSignature reports a signature that does not verify.
var ErrBadSignature = errors.New("the request signature does not verify")

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Request is what an application signs.
type Request struct {
	Algorithm  string
	PublicKey  []byte
	RequestID  string
	Created    time.Time // millisecond precision
	WalletID   string
	Kind       string
	Digest     []byte
	ExternalID string
}

// Canonical returns the bytes that are signed.
func (r *Request) Canonical() []byte {
	var b bytes.Buffer
	b.WriteString(Domain)
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(r.Created.UnixMilli()))
	for _, f := range [][]byte{[]byte(r.Algorithm), r.PublicKey, []byte(r.RequestID), ms[:],
		[]byte(r.WalletID), []byte(r.Kind), r.Digest, []byte(r.ExternalID)} {
		writeField(&b, f)
	}
	return b.Bytes()
}

func writeField(b *bytes.Buffer, f []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(f)))
	b.Write(n[:])
	b.Write(f)
}

// Envelope returns the signed-request bytes: canonical bytes, then the
// length-prefixed signature.
func (r *Request) Envelope(sig []byte) []byte {
	var b bytes.Buffer
	b.Write(r.Canonical())
	writeField(&b, sig)
	return b.Bytes()
}

// Decode parses signed-request bytes as they reach a signer or a driver.
// It checks their form only (sizes, names, no trailing bytes); Verify
// checks the signature.
func Decode(data []byte) (*Request, []byte, error) {
	if !bytes.HasPrefix(data, []byte(Domain)) {
		return nil, nil, fmt.Errorf("%w: not a version 1 signed request", ErrMalformed)
	}
	rest := data[len(Domain):]
	fields := make([][]byte, 9)
	for i := range fields {
		if len(rest) < 4 {
			return nil, nil, fmt.Errorf("%w: truncated at field %d", ErrMalformed, i+1)
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if n > maxField || int(n) > len(rest) {
			return nil, nil, fmt.Errorf("%w: field %d has a bad length", ErrMalformed, i+1)
		}
		fields[i], rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(rest))
	}
	if len(fields[3]) != 8 {
		return nil, nil, fmt.Errorf("%w: the create time is not 8 bytes", ErrMalformed)
	}
	ms := int64(binary.BigEndian.Uint64(fields[3]))
	r := &Request{
		Algorithm: string(fields[0]), PublicKey: bytes.Clone(fields[1]), RequestID: string(fields[2]),
		Created: time.UnixMilli(ms).UTC(), WalletID: string(fields[4]), Kind: string(fields[5]),
		Digest: bytes.Clone(fields[6]), ExternalID: string(fields[7]),
	}
	if err := r.Check(); err != nil {
		return nil, nil, err
	}
	sig := bytes.Clone(fields[8])
	if len(sig) != SignatureLen {
		return nil, nil, fmt.Errorf("%w: the signature is %d bytes, want %d", ErrMalformed, len(sig), SignatureLen)
	}
	return r, sig, nil
}

// Check validates the form of a request's fields.
func (r *Request) Check() error {
	if err := checkPublicKey(r.Algorithm, r.PublicKey); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case !requestIDPattern.MatchString(r.RequestID):
		return fmt.Errorf("%w: the request id must be 1 to 128 letters, digits or ._:-", ErrMalformed)
	case r.Kind != KindHash && r.Kind != KindEIP191 && r.Kind != KindRaw:
		return fmt.Errorf("%w: unknown kind %q", ErrMalformed, r.Kind)
	case len(r.Digest) != 32:
		return fmt.Errorf("%w: the digest is %d bytes, want 32", ErrMalformed, len(r.Digest))
	case len(r.WalletID) == 0 || len(r.WalletID) > 64 || len(r.ExternalID) > 128:
		return fmt.Errorf("%w: bad wallet or external id", ErrMalformed)
	}
	return nil
}

func checkPublicKey(alg string, pub []byte) error {
	switch alg {
	case Ed25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("an Ed25519 public key is %d bytes, got %d", ed25519.PublicKeySize, len(pub))
		}
	case ECDSAP256:
		if _, err := ecdh.P256().NewPublicKey(pub); err != nil || len(pub) != 65 {
			return errors.New("a P-256 public key must be a 65-byte uncompressed point on the curve")
		}
	default:
		return fmt.Errorf("unknown request key algorithm %q", alg)
	}
	return nil
}

// Verify checks sig over the request's canonical bytes with the public key
// the request names. Whether that key is trusted is the caller's question.
func (r *Request) Verify(sig []byte) error {
	if err := checkPublicKey(r.Algorithm, r.PublicKey); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if len(sig) != SignatureLen {
		return fmt.Errorf("%w: want %d bytes, got %d", ErrBadSignature, SignatureLen, len(sig))
	}
	msg := r.Canonical()
	switch r.Algorithm {
	case Ed25519:
		if ed25519.Verify(ed25519.PublicKey(r.PublicKey), msg, sig) {
			return nil
		}
	case ECDSAP256:
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), r.PublicKey)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		h := sha256.Sum256(msg)
		if ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return nil
		}
	}
	return ErrBadSignature
}

// Fingerprint names a public key that no trust list names: the algorithm
// and the first 8 bytes of the SHA-256 of the key, in hex.
func Fingerprint(alg string, pub []byte) string {
	h := sha256.Sum256(pub)
	return fmt.Sprintf("%s:%x", alg, h[:8])
}

// RawDigest is the digest a request signature binds for a raw message
// (KindRaw): its SHA-256. Ed25519 signs the message itself, so this digest
// only names the message in the signed request.
func RawDigest(message []byte) []byte {
	h := sha256.Sum256(message)
	return h[:]
}
