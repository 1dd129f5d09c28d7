// Package ids makes the random, prefixed identifiers Sigil hands out
// (wal_..., sig_..., cer_..., job_...). They carry 128 random bits, so they
// are unguessable and never collide in practice; ordering comes from a
// separate sequence column, not from the id.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// Prefixes of the identifiers Sigil issues.
const (
	Wallet    = "wal"
	Signature = "sig"
	Ceremony  = "cer"
	Job       = "job"
	Lease     = "lease"
	Token     = "tok"
)

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 lowercase base32 characters (128 bits).
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + "_" + strings.ToLower(enc.EncodeToString(b[:]))
}

// Child returns the wallet id of the BIP-32 child of parentID at path (a
// path in the one form bip32.ParsePath accepts, "m/0/1"). It is derived,
// not random, so that a signer can check that the wallet a request names is
// the child at the parent and path the coordinator asks it to sign with: a
// coordinator cannot have a request for one child signed by another's key.
func Child(parentID, path string) string {
	h := sha256.Sum256([]byte("sigil/child-wallet/v1\x00" + parentID + "\x00" + path))
	return Wallet + "_" + strings.ToLower(enc.EncodeToString(h[:16]))
}

// Valid reports whether s looks like an id New(prefix) made.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	for _, c := range rest {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
