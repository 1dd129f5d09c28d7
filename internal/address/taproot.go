package address

import (
	"crypto/sha256"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// XOnlyPubKeyLen is the length of a BIP-340 x-only public key.
const XOnlyPubKeyLen = 32

// TaprootTweak computes the BIP-341 tweak of an x-only internal key P with
// no script tree: t = H_TapTweak(P) and the output key Q = P + tG, where P
// is the point with x coordinate internalKey and even y. It returns t (32
// bytes, big-endian, below the curve order) and Q's x-only encoding.
func TaprootTweak(internalKey []byte) (tweak, outputKey []byte, err error) {
	if len(internalKey) != XOnlyPubKeyLen {
		return nil, nil, fmt.Errorf("%w: x-only key length %d, want %d", ErrInvalidPublicKey, len(internalKey), XOnlyPubKeyLen)
	}
	p, err := secp256k1.ParsePubKey(append([]byte{secp256k1.PubKeyFormatCompressedEven}, internalKey...))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not an x coordinate on secp256k1: %w", ErrInvalidPublicKey, err)
	}
	h := taggedHash("TapTweak", internalKey)
	var t secp256k1.ModNScalar
	if overflow := t.SetByteSlice(h); overflow {
		// Probability about 2^-128; BIP-341 makes such a key unusable.
		return nil, nil, fmt.Errorf("%w: the TapTweak hash is not below the curve order", ErrInvalidPublicKey)
	}
	var pj, tg, q secp256k1.JacobianPoint
	p.AsJacobian(&pj)
	secp256k1.ScalarBaseMultNonConst(&t, &tg)
	secp256k1.AddNonConst(&pj, &tg, &q)
	if (q.X.IsZero() && q.Y.IsZero()) || q.Z.IsZero() {
		return nil, nil, fmt.Errorf("%w: the tweaked key is the point at infinity", ErrInvalidPublicKey)
	}
	q.ToAffine()
	x := q.X.Bytes()
	return h, x[:], nil
}

// BitcoinP2TR returns the Taproot (witness version 1, BIP-341) address of
// an x-only internal key with no script tree, bech32m-encoded (BIP-350)
// with the given human-readable part ("bc" for mainnet).
func BitcoinP2TR(internalKey []byte, hrp string) (string, error) {
	_, q, err := TaprootTweak(internalKey)
	if err != nil {
		return "", err
	}
	return segwitV1Address(hrp, q)
}

// taggedHash is BIP-340's SHA256(SHA256(tag) || SHA256(tag) || msg).
func taggedHash(tag string, msg []byte) []byte {
	th := sha256.Sum256([]byte(tag))
	h := sha256.New()
	h.Write(th[:])
	h.Write(th[:])
	h.Write(msg)
	return h.Sum(nil)
}
