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
	return Base58(append(payload, second[:4]...)), nil
}
