package address

import (
	"crypto/sha256"

	// RIPEMD-160 is deprecated in x/crypto as a choice for new designs, but
	// Bitcoin's hash160 is fixed by consensus, so there is no alternative.
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // hash160 is consensus-defined; see comment above.
)

// BitcoinP2WPKH returns the native SegWit (witness version 0) pay-to-
// witness-public-key-hash address of a compressed secp256k1 public key,
// bech32-encoded per BIP-173 with the given human-readable part: "bc" for
// mainnet, "tb" for testnet and signet, "bcrt" for regtest.
//
// Only compressed keys are accepted because BIP-143 makes outputs locked to
// an uncompressed key's hash unspendable under standard policy.
func BitcoinP2WPKH(compressedPub []byte, hrp string) (string, error) {
	if _, err := parseCompressed(compressedPub); err != nil {
		return "", err
	}
	return segwitV0Address(hrp, hash160(compressedPub))
}

// hash160 is RIPEMD160(SHA256(b)), Bitcoin's 20-byte key hash.
func hash160(b []byte) []byte {
	s := sha256.Sum256(b)
	r := ripemd160.New()
	r.Write(s[:]) // hash.Hash.Write never returns an error.
	return r.Sum(nil)
}
