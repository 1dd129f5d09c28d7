package address_test

import (
	"encoding/hex"
	"testing"

	"github.com/sigil-wallet/sigil/internal/address"
)

// TestWIF checks against published vectors (Bitcoin wiki, and the key 1).
func TestWIF(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"0c28fca386c7a227600b2fe50b7cae11ec86d3bf1fbe471be89827e19d72aa1d", "KwdMAjGmerYanjeui5SHS7JkmpZvVipYvB2LJGU1ZxJwYvP98617"},
		{"0000000000000000000000000000000000000000000000000000000000000001", "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"},
	} {
		key, _ := hex.DecodeString(tc.key)
		got, err := address.WIF(key)
		if err != nil || got != tc.want {
			t.Errorf("WIF(%s) = %s, %v; want %s", tc.key, got, err, tc.want)
		}
	}
	if _, err := address.WIF(make([]byte, 31)); err == nil {
		t.Error("a 31-byte key was encoded")
	}
}
