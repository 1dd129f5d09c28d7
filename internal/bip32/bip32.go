// Package bip32 is the public half of BIP-32 that Sigil needs: parsing a
// non-hardened derivation path and deriving a child public key from a
// parent key and chain code. The signers derive their shares with
// multi-party-sig's own derivation; the coordinator uses this to know a
// child wallet's key at once, and checks the signers' signatures against
// it.
package bip32

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// MaxDepth bounds a path's length.
const MaxDepth = 16

// ChainCodeLen is the length of a BIP-32 chain code.
const ChainCodeLen = 32

// ErrInvalidPath reports a path that is malformed or hardened.
var ErrInvalidPath = errors.New("invalid derivation path")

// ParsePath parses "m/i/j/..." with 1 to MaxDepth non-hardened indexes
// (decimal, below 2^31, no leading zeros). Hardened steps ("1'", "1h")
// are refused: a hardened child needs the parent's private key.
func ParsePath(path string) ([]uint32, error) {
	parts := strings.Split(path, "/")
	if len(parts) < 2 || parts[0] != "m" {
		return nil, fmt.Errorf("%w: %q must look like m/0/1", ErrInvalidPath, path)
	}
	if len(parts)-1 > MaxDepth {
		return nil, fmt.Errorf("%w: %d levels, at most %d", ErrInvalidPath, len(parts)-1, MaxDepth)
	}
	out := make([]uint32, 0, len(parts)-1)
	for _, p := range parts[1:] {
		if strings.HasSuffix(p, "'") || strings.HasSuffix(p, "h") || strings.HasSuffix(p, "H") {
			return nil, fmt.Errorf("%w: %q is hardened; only non-hardened steps can be derived from a public key", ErrInvalidPath, p)
		}
		if p == "" || (len(p) > 1 && p[0] == '0') || strings.TrimLeft(p, "0123456789") != "" {
			return nil, fmt.Errorf("%w: step %q is not a decimal index", ErrInvalidPath, p)
		}
		i, err := strconv.ParseUint(p, 10, 32)
		if err != nil || i >= 1<<31 {
			return nil, fmt.Errorf("%w: step %q is not below 2^31 (hardened indexes are refused)", ErrInvalidPath, p)
		}
		out = append(out, uint32(i))
	}
	return out, nil
}

// Child is a key derived along a path.
type Child struct {
	// PublicKey is the child's 33-byte compressed key.
	PublicKey []byte
	// ChainCode is the child's chain code.
	ChainCode []byte
	// Tweak is the sum of the path's steps (32 bytes, big-endian, mod the
	// curve order): the child's private key is the parent's plus Tweak, so
	// each signer adds it to its share of the parent key.
	Tweak []byte
}

// DeriveChild derives the key at path below a parent compressed key and
// chain code (BIP-32 CKDpub).
func DeriveChild(parent, chainCode []byte, path []uint32) (*Child, error) {
	if len(chainCode) != ChainCodeLen {
		return nil, fmt.Errorf("bip32: chain code is %d bytes, want %d", len(chainCode), ChainCodeLen)
	}
	k, err := secp256k1.ParsePubKey(parent)
	if err != nil || len(parent) != 33 {
		return nil, fmt.Errorf("bip32: parent key is not a compressed secp256k1 key")
	}
	pub, chain := k.SerializeCompressed(), chainCode
	var sum secp256k1.ModNScalar
	for _, i := range path {
		var il *secp256k1.ModNScalar
		if pub, chain, il, err = ckdPub(pub, chain, i); err != nil {
			return nil, err
		}
		sum.Add(il)
	}
	tweak := sum.Bytes()
	return &Child{PublicKey: pub, ChainCode: chain, Tweak: tweak[:]}, nil
}

func ckdPub(parent, chain []byte, i uint32) ([]byte, []byte, *secp256k1.ModNScalar, error) {
	if i >= 1<<31 {
		return nil, nil, nil, fmt.Errorf("%w: index %d is hardened", ErrInvalidPath, i)
	}
	mac := hmac.New(sha512.New, chain)
	mac.Write(parent)
	_ = binary.Write(mac, binary.BigEndian, i)
	sum := mac.Sum(nil)
	var il secp256k1.ModNScalar
	if overflow := il.SetByteSlice(sum[:32]); overflow || il.IsZero() {
		return nil, nil, nil, fmt.Errorf("bip32: index %d gives an invalid key; use the next index", i)
	}
	p, err := secp256k1.ParsePubKey(parent)
	if err != nil {
		return nil, nil, nil, err
	}
	var pj, ilg, sum2 secp256k1.JacobianPoint
	p.AsJacobian(&pj)
	secp256k1.ScalarBaseMultNonConst(&il, &ilg)
	secp256k1.AddNonConst(&pj, &ilg, &sum2)
	if (sum2.X.IsZero() && sum2.Y.IsZero()) || sum2.Z.IsZero() {
		return nil, nil, nil, fmt.Errorf("bip32: index %d gives the point at infinity; use the next index", i)
	}
	sum2.ToAffine()
	return secp256k1.NewPublicKey(&sum2.X, &sum2.Y).SerializeCompressed(), sum[32:], &il, nil
}
