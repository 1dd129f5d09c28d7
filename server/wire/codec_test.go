package wire_test

import (
	"strings"
	"testing"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/wire"
)

// FuzzStrictJSON: the codec decodes bytes from the network; it must never
// panic, and whatever it accepts must name only known fields and enum
// values, so encoding it again and decoding that gives no error.
func FuzzStrictJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"backend": "hsm"}`, `{"backend": "BACKEND_HSM", "name": "x"}`, `{"colour": 1}`, `{"keyScheme": 7}`, `[`, ``} {
		f.Add([]byte(s))
	}
	codec := wire.StrictJSON("json")
	f.Fuzz(func(t *testing.T, data []byte) {
		var m walletv1.CreateWalletRequest
		if err := codec.Unmarshal(data, &m); err != nil {
			if !strings.HasPrefix(err.Error(), "invalid JSON for sigil.wallet.v1.CreateWalletRequest: ") && len(data) > 0 {
				t.Fatalf("error does not say what was invalid: %v", err)
			}
			return
		}
		out, err := codec.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		var again walletv1.CreateWalletRequest
		if err := codec.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
	})
}
