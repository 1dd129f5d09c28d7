package ids_test

import (
	"regexp"
	"testing"

	"github.com/sigil-wallet/sigil/internal/ids"
)

func TestNewMatchesContractPattern(t *testing.T) {
	// The same pattern the protobuf contracts validate ids with.
	re := regexp.MustCompile(`^wal_[0-9a-z]{26}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := ids.New(ids.Wallet)
		if !re.MatchString(id) || !ids.Valid(ids.Wallet, id) {
			t.Fatalf("id %q does not match the contract pattern", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestValidRejects(t *testing.T) {
	for _, s := range []string{"", "wal_", "sig_aaaaaaaaaaaaaaaaaaaaaaaaaa", "wal_AAAAAAAAAAAAAAAAAAAAAAAAAA", "wal_aaaaaaaaaaaaaaaaaaaaaaaaa1", "wal_aaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if ids.Valid(ids.Wallet, s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}
