package address

import (
	"crypto/sha256"
	"fmt"
)

// WIF encodes a 32-byte secp256k1 private key in Bitcoin's Wallet Import
// Format for mainnet, flagged for the compressed public key (the form every
// Sigil address uses): base58check(0x80 || key || 0x01).
func WIF(priv []byte) (string, error) {
	if len(priv) != 32 {
		return "", fmt.Errorf("address: private key is %d bytes, want 32", len(priv))
	}
	payload := make([]byte, 0, 38)
	payload = append(payload, 0x80)
	payload = append(payload, priv...)
	payload = append(payload, 0x01)
	defer clear(payload)
	first := sha256.Sum256(payload)
	second := sha256.Sum256(first[:])
	clear(first[:])
	return base58(append(payload, second[:4]...)), nil
}

const base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// base58 encodes b (Bitcoin's alphabet, leading zero bytes as '1').
// Quadratic, which is fine for the few dozen bytes of a key.
func base58(b []byte) string {
	zeros := 0
	for zeros < len(b) && b[zeros] == 0 {
		zeros++
	}
	digits := make([]byte, 0, len(b)*138/100+1) // base-58 digits, least significant first
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
	clear(digits)
	return string(out)
}
