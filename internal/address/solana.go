package address

import (
	"crypto/ed25519"
	"fmt"

	"filippo.io/edwards25519"
)

// base58Alphabet is Bitcoin's base58 alphabet, which Solana uses.
const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// Solana returns the Solana address of an Ed25519 public key: the key's 32
// bytes in base58. The key must decode as a curve point, so an address is
// never made for bytes no one can sign for.
func Solana(pub []byte) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: Ed25519 key length %d, want %d", ErrInvalidPublicKey, len(pub), ed25519.PublicKeySize)
	}
	if _, err := new(edwards25519.Point).SetBytes(pub); err != nil {
		return "", fmt.Errorf("%w: not an Ed25519 point: %w", ErrInvalidPublicKey, err)
	}
	return Base58(pub), nil
}

// Base58 encodes b in base58 (Bitcoin alphabet), each leading zero byte
// becoming a leading '1'.
func Base58(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	// log(256)/log(58) < 1.37: enough digits for any input.
	digits := make([]byte, 0, len(b)*137/100+1)
	for _, v := range b[zeros:] {
		carry := int(v)
		for i := range digits {
			carry += int(digits[i]) << 8
			digits[i] = byte(carry % 58)
			carry /= 58
		}
		for carry > 0 {
			digits = append(digits, byte(carry%58))
			carry /= 58
		}
	}
	out := make([]byte, zeros, zeros+len(digits))
	for i := range out {
		out[i] = '1'
	}
	for i := len(digits) - 1; i >= 0; i-- {
		out = append(out, base58Alphabet[digits[i]])
	}
	clear(digits) // WIF encodes private keys with it
	return string(out)
}
