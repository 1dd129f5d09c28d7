package address

import (
	"encoding/hex"
	"strconv"

	"golang.org/x/crypto/sha3"
)

// eip191Prefix is the fixed prefix of an Ethereum "personal_sign" message.
// It starts with 0x19 so the signed bytes can never be a valid RLP
// transaction, which is the whole point of EIP-191.
const eip191Prefix = "\x19Ethereum Signed Message:\n"

// Keccak256 returns the Keccak-256 digest of the concatenation of data.
//
// This is the original Keccak padding that Ethereum adopted before NIST
// changed it for SHA3-256; the two give different digests, so using
// sha3.New256 here would silently produce wrong addresses.
func Keccak256(data ...[]byte) []byte {
	h := sha3.NewLegacyKeccak256()
	for _, b := range data {
		h.Write(b) // hash.Hash.Write never returns an error.
	}
	return h.Sum(nil)
}

// EIP191Digest returns the digest a wallet signs for personal_sign /
// eth_sign (EIP-191 version 0x45):
// keccak256("\x19Ethereum Signed Message:\n" + decimal(len(message)) + message).
//
// The length is the byte length in ASCII decimal, not hex and not the rune
// count, matching what go-ethereum, ethers and MetaMask hash.
func EIP191Digest(message []byte) []byte {
	return Keccak256([]byte(eip191Prefix), []byte(strconv.Itoa(len(message))), message)
}

// Ethereum returns the EIP-55 checksummed, "0x"-prefixed address of a
// compressed secp256k1 public key.
//
// The address is the last 20 bytes of keccak256(X || Y), where X and Y are
// the 32-byte big-endian affine coordinates; the SEC1 0x04 prefix of the
// uncompressed form is not hashed.
func Ethereum(compressedPub []byte) (string, error) {
	key, err := parseCompressed(compressedPub)
	if err != nil {
		return "", err
	}
	uncompressed := key.SerializeUncompressed() // 0x04 || X || Y
	digest := Keccak256(uncompressed[1:])
	return checksumHex(digest[len(digest)-20:]), nil
}

// checksumHex encodes a 20-byte address with the EIP-55 mixed-case
// checksum: a hex letter is upper case when the matching nibble of
// keccak256(lowercase hex) is 8 or more. Wallets use the case to catch
// typos, so a lower-case-only address would lose that protection.
func checksumHex(addr []byte) string {
	lower := hex.EncodeToString(addr)
	hash := Keccak256([]byte(lower))

	out := make([]byte, 2+len(lower))
	out[0], out[1] = '0', 'x'
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		nibble := hash[i/2]
		if i%2 == 0 {
			nibble >>= 4
		}
		if c >= 'a' && nibble&0x0f >= 8 {
			c -= 'a' - 'A'
		}
		out[2+i] = c
	}
	return string(out)
}
