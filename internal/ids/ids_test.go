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

// A child wallet's id is a function of its parent and path, and looks like
// any other wallet id.
func TestChild(t *testing.T) {
	parent, other := ids.New(ids.Wallet), ids.New(ids.Wallet)
	a := ids.Child(parent, "m/0/1")
	if !ids.Valid(ids.Wallet, a) || a != ids.Child(parent, "m/0/1") {
		t.Fatalf("Child = %q: not a stable wallet id", a)
	}
	for _, b := range []string{ids.Child(parent, "m/0/2"), ids.Child(parent, "m/0"), ids.Child(other, "m/0/1")} {
		if b == a {
			t.Fatalf("two children share the id %s", a)
		}
	}
}
