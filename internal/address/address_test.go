package address_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/address"
)

// knownKeys pairs public keys with addresses computed independently
// (@noble/curves + @noble/hashes + @scure/base), plus the published
// vectors: G is the key of private key 1, whose Ethereum address is widely
// quoted and whose P2WPKH address is BIP-173's own example, and
// 0x2c7536E3... is the web3.js documentation account. Odd-Y (0x03) keys are
// included because decompression takes a different square root branch.
var knownKeys = []struct {
	name     string
	pub      string
	ethereum string
	bc       string
	tb       string
}{
	{
		name:     "G (private key 1)",
		pub:      "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798",
		ethereum: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
		bc:       "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
		tb:       "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
	},
	{
		name:     "2G",
		pub:      "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5",
		ethereum: "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF",
		bc:       "bc1qq6hag67dl53wl99vzg42z8eyzfz2xlkvxechjp",
		tb:       "tb1qq6hag67dl53wl99vzg42z8eyzfz2xlkvvlryfj",
	},
	{
		name:     "6G (odd Y)",
		pub:      "03fff97bd5755eeea420453a14355235d382f6472f8568a18b2f057a1460297556",
		ethereum: "0xE57bFE9F44b819898F47BF37E5AF72a0783e1141",
		bc:       "bc1q0ldfeupqc9k2eaffep7cm6yml3ct3jwtwzqt7k",
		tb:       "tb1q0ldfeupqc9k2eaffep7cm6yml3ct3jwtyymc99",
	},
	{
		name:     "-G (private key n-1, odd Y)",
		pub:      "0379be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
		ethereum: "0x80C0dbf239224071c59dD8970ab9d542E3414aB2",
		bc:       "bc1q4h0ycu78h88wzldxc7e79vhw5xsde0n8jk4wl5",
		tb:       "tb1q4h0ycu78h88wzldxc7e79vhw5xsde0n8csway8",
	},
	{
		name:     "web3.js docs account",
		pub:      "024e3b81af9c2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e",
		ethereum: "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23",
		bc:       "bc1qnduq8yy8h4nr7g9vuuglzklqatmaquq9ac42k2",
		tb:       "tb1qnduq8yy8h4nr7g9vuuglzklqatmaquq9h7wede",
	},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test table %q: %v", s, err)
	}
	return b
}

func TestEthereum(t *testing.T) {
	for _, tc := range knownKeys {
		t.Run(tc.name, func(t *testing.T) {
			got, err := address.Ethereum(mustHex(t, tc.pub))
			if err != nil {
				t.Fatalf("Ethereum: %v", err)
			}
			if got != tc.ethereum {
				t.Errorf("Ethereum = %s, want %s", got, tc.ethereum)
			}
		})
	}
}

func TestBitcoinP2WPKH(t *testing.T) {
	for _, tc := range knownKeys {
		t.Run(tc.name, func(t *testing.T) {
			for hrp, want := range map[string]string{"bc": tc.bc, "tb": tc.tb} {
				got, err := address.BitcoinP2WPKH(mustHex(t, tc.pub), hrp)
				if err != nil {
					t.Fatalf("BitcoinP2WPKH(%q): %v", hrp, err)
				}
				if got != want {
					t.Errorf("BitcoinP2WPKH(%q) = %s, want %s", hrp, got, want)
				}
			}
		})
	}
}

// invalidKeys covers every way a caller can hand over something that is
// not a compressed point. The substring pins which check fired, so a
// refactor cannot quietly turn "not on curve" into a generic error path
// that happens to also reject it.
var invalidKeys = []struct {
	name    string
	pub     string
	errPart string
}{
	{"empty", "", "length 0"},
	{"too short", "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F817", "length 32"},
	{"too long", "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F8179800", "length 34"},
	{
		name:    "uncompressed",
		pub:     "0479BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8",
		errPart: "length 65",
	},
	{"prefix 0x04 at 33 bytes", "0479BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", "prefix 0x04"},
	{"prefix 0x00", "0079BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", "prefix 0x00"},
	{"hybrid prefix 0x06", "0679BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", "prefix 0x06"},
	// x = 5: 5^3 + 7 = 132 is not a square mod p, so no point has this x.
	{"x not on curve", "020000000000000000000000000000000000000000000000000000000000000005", "not on the secp256k1 curve"},
	// x = p is not a field element at all.
	{"x equals field prime", "02FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F", "not on the secp256k1 curve"},
	{"x all ones", "03FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "not on the secp256k1 curve"},
}

func TestInvalidPublicKey(t *testing.T) {
	derivers := map[string]func([]byte) (string, error){
		"Ethereum":      address.Ethereum,
		"BitcoinP2WPKH": func(pub []byte) (string, error) { return address.BitcoinP2WPKH(pub, "bc") },
	}
	for _, tc := range invalidKeys {
		for name, derive := range derivers {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				got, err := derive(mustHex(t, tc.pub))
				if !errors.Is(err, address.ErrInvalidPublicKey) {
					t.Fatalf("err = %v, want ErrInvalidPublicKey", err)
				}
				if !strings.Contains(err.Error(), tc.errPart) {
					t.Errorf("err = %q, want it to mention %q", err, tc.errPart)
				}
				if got != "" {
					t.Errorf("address = %q alongside an error, want empty", got)
				}
			})
		}
	}
}

func TestBitcoinP2WPKHInvalidHRP(t *testing.T) {
	g := mustHex(t, knownKeys[0].pub)
	for _, hrp := range []string{
		"",
		"BC",                    // upper case: refused, not folded.
		"b c",                   // space is outside 33-126.
		"b\x7fc",                // DEL is outside 33-126.
		strings.Repeat("a", 51), // 51 + 1 + 33 data + 6 checksum = 91 > 90.
	} {
		t.Run(hrp, func(t *testing.T) {
			if _, err := address.BitcoinP2WPKH(g, hrp); !errors.Is(err, address.ErrInvalidHRP) {
				t.Errorf("BitcoinP2WPKH(%q) err = %v, want ErrInvalidHRP", hrp, err)
			}
		})
	}
	// The longest HRP that still fits in 90 characters must be accepted.
	if _, err := address.BitcoinP2WPKH(g, strings.Repeat("a", 50)); err != nil {
		t.Errorf("50-character HRP: %v", err)
	}
}

func TestEIP191Digest(t *testing.T) {
	// Expected digests from go-ethereum accounts.TextHash and
	// @noble/hashes; ethtest also cross-checks this function against
	// go-ethereum for arbitrary messages.
	for _, tc := range []struct {
		name    string
		message string
		want    string
	}{
		{"hello world", "hello world", "d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"},
		{"empty", "", "5f35dce98ba4fba25530a026ed80b2cecdaa31091ba4958b99b52ea1d068adad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(address.EIP191Digest([]byte(tc.message))); got != tc.want {
				t.Errorf("EIP191Digest(%q) = %s, want %s", tc.message, got, tc.want)
			}
		})
	}
}

func TestKeccak256(t *testing.T) {
	for _, tc := range []struct {
		name string
		data [][]byte
		want string
	}{
		// Keccak-256 of nothing; SHA3-256 of nothing would be a7ffc6f8...,
		// so this also proves the legacy padding is in use.
		{"no arguments", nil, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"},
		{"one empty slice", [][]byte{{}}, "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"},
		{"abc", [][]byte{[]byte("abc")}, "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"},
		{"abc split", [][]byte{[]byte("a"), nil, []byte("bc")}, "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hex.EncodeToString(address.Keccak256(tc.data...)); got != tc.want {
				t.Errorf("Keccak256 = %s, want %s", got, tc.want)
			}
		})
	}
}
