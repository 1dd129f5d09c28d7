//go:build !cgo

package ecsig

// recoverFast needs libsecp256k1 (cgo); without it the pure Go path decides.
func recoverFast(r, s *[32]byte, digest, pub []byte, first byte) (v byte, ok bool) { return 0, false }

// cgoBuild reports whether recoverFast uses libsecp256k1 (tests).
const cgoBuild = false
