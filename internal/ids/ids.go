// Package ids makes the random, prefixed identifiers Sigil hands out
// (wal_..., sig_..., cer_..., job_...). They carry 128 random bits, so they
// are unguessable and never collide in practice; ordering comes from a
// separate sequence column, not from the id.
package ids

import (
	"crypto/rand"
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
