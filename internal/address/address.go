// Package address derives the public, user-facing identifiers of a
// secp256k1 key: Ethereum addresses (EIP-55) and Bitcoin native SegWit
// P2WPKH addresses (BIP-173), plus the Keccak-256 digests Ethereum signing
// needs (EIP-191 personal messages).
//
// Every function takes the 33-byte compressed SEC1 encoding because that is
// what the signer stores and returns for a wallet key. Keys are fully
// validated (length, prefix and curve membership) before anything is
// derived: an address computed from bytes that are not a real public key is
// an address nobody can ever spend from, so it is an error, not a result.
package address

import (
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// CompressedPubKeyLen is the length of a SEC1 compressed secp256k1 point.
const CompressedPubKeyLen = 33

// ErrInvalidPublicKey is returned (wrapped, with the reason) when the input
// is not a compressed secp256k1 public key.
var ErrInvalidPublicKey = errors.New("address: invalid public key")

// ErrInvalidHRP is returned (wrapped) when a bech32 human-readable part
// cannot be used to build an address.
var ErrInvalidHRP = errors.New("address: invalid bech32 human-readable part")

// parseCompressed validates a compressed SEC1 key and returns the parsed
// point. Length and prefix are checked here rather than left to
// secp256k1.ParsePubKey, which also accepts 65-byte keys: callers of this
// package promise compressed keys, and silently accepting another encoding
// would hide a bug upstream.
func parseCompressed(pub []byte) (*secp256k1.PublicKey, error) {
	if len(pub) != CompressedPubKeyLen {
		return nil, fmt.Errorf("%w: length %d, want %d", ErrInvalidPublicKey, len(pub), CompressedPubKeyLen)
	}
	if pub[0] != secp256k1.PubKeyFormatCompressedEven && pub[0] != secp256k1.PubKeyFormatCompressedOdd {
		return nil, fmt.Errorf("%w: prefix 0x%02x, want 0x02 or 0x03", ErrInvalidPublicKey, pub[0])
	}
	key, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		// With length and prefix already checked, the only remaining
		// failures are an X that is not a field element or has no
		// matching Y: the point is not on the curve.
		return nil, fmt.Errorf("%w: not on the secp256k1 curve: %w", ErrInvalidPublicKey, err)
	}
	return key, nil
}
