// Package attest is HSM key attestation: the statement an HSM signs with
// its attestation key (a non-extractable ECDSA P-256 key generated on the
// token beside the master key) for each new wallet key, and the check the
// coordinator makes against the attestation keys it pins.
//
// A driver certificate alone then no longer suffices to plant a wallet key:
// the coordinator activates an HSM wallet only with a public key that an
// HSM it trusts signed for that very wallet. Each HSM has its own
// attestation key (it never leaves the token, so it cannot be shared); the
// coordinator pins the public keys of all of them.
package attest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// domain separates attestation statements from anything else the key
// might ever sign.
const domain = "sigil/hsm-key-attestation/v1"

// Sizes of an attestation's fields.
const (
	KeyIDSize     = sha256.Size
	SignatureSize = 64 // r || s, P-256
)

// Errors of Verify.
var (
	// ErrMissing: the result carries no attestation.
	ErrMissing = errors.New("the key is not attested by an HSM")
	// ErrUnknownKey: the attestation names a key the coordinator does not pin.
	ErrUnknownKey = errors.New("the key is attested by an attestation key this coordinator does not pin")
	// ErrBadSignature: the attestation does not verify for this wallet and key.
	ErrBadSignature = errors.New("the attestation does not verify for this wallet and public key")
)

// Statement is what an HSM signs for a new key: the domain, the wallet id
// and the public key, each length-prefixed so no two inputs encode alike.
func Statement(walletID string, publicKey []byte) []byte {
	b := make([]byte, 0, len(domain)+4+len(walletID)+len(publicKey))
	b = append(b, domain...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(walletID)))
	b = append(b, walletID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(publicKey)))
	return append(b, publicKey...)
}

// Digest is the SHA-256 of Statement, which the HSM signs with CKM_ECDSA.
func Digest(walletID string, publicKey []byte) []byte {
	d := sha256.Sum256(Statement(walletID, publicKey))
	return d[:]
}

// KeyID names an attestation key: the SHA-256 of its DER
// SubjectPublicKeyInfo.
func KeyID(pub *ecdsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil // only for curves x509 cannot encode; P-256 is not one
	}
	id := sha256.Sum256(der)
	return id[:]
}

// Verifier checks attestations against pinned keys.
type Verifier struct {
	keys map[string]*ecdsa.PublicKey // by string(KeyID)
}

// NewVerifier pins keys; it needs at least one P-256 key.
func NewVerifier(keys []*ecdsa.PublicKey) (*Verifier, error) {
	v := &Verifier{keys: map[string]*ecdsa.PublicKey{}}
	for _, k := range keys {
		if k == nil || k.Curve != elliptic.P256() {
			return nil, errors.New("attest: attestation keys must be ECDSA P-256")
		}
		v.keys[string(KeyID(k))] = k
	}
	if len(v.keys) == 0 {
		return nil, errors.New("attest: no attestation key to pin")
	}
	return v, nil
}

// Verify checks that the pinned key keyID signed (r || s) the statement
// for walletID and publicKey.
func (v *Verifier) Verify(walletID string, publicKey, keyID, signature []byte) error {
	if len(keyID) == 0 && len(signature) == 0 {
		return ErrMissing
	}
	k, ok := v.keys[string(keyID)]
	if !ok {
		return fmt.Errorf("%w (key id %x)", ErrUnknownKey, shortID(keyID))
	}
	if len(signature) != SignatureSize {
		return fmt.Errorf("%w: signature of %d bytes, want %d", ErrBadSignature, len(signature), SignatureSize)
	}
	r, s := new(big.Int).SetBytes(signature[:32]), new(big.Int).SetBytes(signature[32:])
	if !ecdsa.Verify(k, Digest(walletID, publicKey), r, s) {
		return ErrBadSignature
	}
	return nil
}

func shortID(id []byte) []byte { return id[:min(len(id), 8)] }

// ParsePEM reads every "PUBLIC KEY" block of data as a P-256 key.
func ParsePEM(data []byte) ([]*ecdsa.PublicKey, error) {
	var keys []*ecdsa.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("attest: PUBLIC KEY block: %w", err)
		}
		ek, ok := k.(*ecdsa.PublicKey)
		if !ok || ek.Curve != elliptic.P256() {
			return nil, fmt.Errorf("attest: a %T is not an ECDSA P-256 attestation key", k)
		}
		keys = append(keys, ek)
	}
	if len(keys) == 0 {
		return nil, errors.New("attest: no PUBLIC KEY block (want the PEM printed by `sigil hsm attestation-key`)")
	}
	return keys, nil
}

// EncodePEM encodes an attestation key as a "PUBLIC KEY" PEM block.
func EncodePEM(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
