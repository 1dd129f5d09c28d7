package address

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// Public keys reach this package from the network (clients, relays, HSMs),
// so the derivers must reject any byte string with an error, never panic,
// and must never return an address for something that is not a key.

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		"0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798",
		"0379BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798",
		"020000000000000000000000000000000000000000000000000000000000000005",
		"02FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F",
		"0479BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8",
		"",
		"02",
	} {
		b, err := hex.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzEthereum(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, pub []byte) {
		addr, err := Ethereum(pub)
		if err != nil {
			if addr != "" {
				t.Fatalf("address %q returned with error %v", addr, err)
			}
			return
		}
		if len(pub) != CompressedPubKeyLen {
			t.Fatalf("accepted a %d-byte key", len(pub))
		}
		if len(addr) != 42 || !strings.HasPrefix(addr, "0x") {
			t.Fatalf("malformed address %q", addr)
		}
		raw, err := hex.DecodeString(strings.ToLower(addr[2:]))
		if err != nil {
			t.Fatalf("address %q is not hex: %v", addr, err)
		}
		if got := checksumHex(raw); got != addr {
			t.Fatalf("checksum not stable: %q re-encodes as %q", addr, got)
		}
	})
}

func FuzzBitcoinP2WPKH(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, pub []byte) {
		addr, err := BitcoinP2WPKH(pub, "bc")
		if err != nil {
			if addr != "" {
				t.Fatalf("address %q returned with error %v", addr, err)
			}
			return
		}
		if len(pub) != CompressedPubKeyLen {
			t.Fatalf("accepted a %d-byte key", len(pub))
		}
		hrp, data, err := decodeBech32(addr)
		if err != nil {
			t.Fatalf("produced undecodable %q: %v", addr, err)
		}
		program, err := fromWords(data[1:])
		if err != nil {
			t.Fatalf("bad padding in %q: %v", addr, err)
		}
		if hrp != "bc" || data[0] != 0 || !bytes.Equal(program, hash160(pub)) {
			t.Fatalf("%q decodes to hrp %q version %d program %x", addr, hrp, data[0], program)
		}
	})
}
