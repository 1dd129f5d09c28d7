//go:build cgo

package ecsig

import (
	"bytes"

	"github.com/ethereum/go-ethereum/crypto/secp256k1"
)

// recoverFast finds the recovery id of the low-S signature (r, s) by public
// key recovery in libsecp256k1 (bitcoin-core's C library, as go-ethereum
// bundles it): the key recovered under id v equals pub exactly when (r, s)
// is a valid signature of digest under pub and v names its point R. It
// costs one or two recoveries, each about a third of one verification in
// pure Go. It tries id first (0 or 1) first: with the right id it costs
// one recovery. ok is false when neither id 0 nor 1 recovers pub: the
// caller then decides with the pure Go path, which also names the error.
func recoverFast(r, s *[32]byte, digest, pub []byte, first byte) (v byte, ok bool) {
	var sig [65]byte
	copy(sig[:32], r[:])
	copy(sig[32:64], s[:])
	for i := range byte(2) {
		v = (first + i) & 1
		sig[64] = v
		got, err := secp256k1.RecoverPubkey(digest, sig[:])
		if err != nil || len(got) != 65 {
			continue
		}
		if samePoint(got, pub) {
			return v, true
		}
	}
	return 0, false
}

// samePoint compares an uncompressed point with pub, compressed (33 bytes)
// or uncompressed (65).
func samePoint(uncompressed, pub []byte) bool {
	switch len(pub) {
	case 65:
		return bytes.Equal(uncompressed, pub)
	case 33:
		prefix := byte(0x02) | uncompressed[64]&1
		return pub[0] == prefix && bytes.Equal(uncompressed[1:33], pub[1:])
	}
	return false
}

// cgoBuild reports whether recoverFast uses libsecp256k1 (tests).
const cgoBuild = true
