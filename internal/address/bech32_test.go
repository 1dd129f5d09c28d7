package address

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// decodeBech32 is a test-only BIP-173 decoder. Production code only ever
// encodes, so the decoder lives here, where it lets the encoder be checked
// against BIP-173's published strings: decode the vector, re-encode the
// parts, and require the same string back.
func decodeBech32(s string) (string, []byte, error) {
	if len(s) > bech32MaxLen {
		return "", nil, errors.New("too long")
	}
	if strings.ToLower(s) != s && strings.ToUpper(s) != s {
		return "", nil, errors.New("mixed case")
	}
	s = strings.ToLower(s)
	sep := strings.LastIndexByte(s, '1')
	if sep < 1 || sep+bech32ChecksumLen+1 > len(s) {
		return "", nil, errors.New("separator position")
	}
	hrp := s[:sep]
	for i := 0; i < len(hrp); i++ {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", nil, errors.New("hrp character out of range")
		}
	}
	data := make([]byte, 0, len(s)-sep-1)
	for i := sep + 1; i < len(s); i++ {
		v := strings.IndexByte(bech32Charset, s[i])
		if v < 0 {
			return "", nil, errors.New("data character not in charset")
		}
		data = append(data, byte(v))
	}
	if bech32Polymod(append(bech32HRPExpand(hrp), data...)) != 1 {
		return "", nil, errors.New("bad checksum")
	}
	return hrp, data[:len(data)-bech32ChecksumLen], nil
}

// fromWords is the inverse of toWords, enforcing BIP-173's padding rules.
func fromWords(words []byte) ([]byte, error) {
	var out []byte
	var acc uint32
	var bits uint
	for _, w := range words {
		acc = acc<<5 | uint32(w)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || (acc<<(8-bits))&0xff != 0 {
		return nil, errors.New("invalid padding")
	}
	return out, nil
}

// TestBech32ValidVectors uses the valid bech32 strings from BIP-173.
func TestBech32ValidVectors(t *testing.T) {
	for _, s := range []string{
		"A12UEL5L",
		"a12uel5l",
		"an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
		"abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
		// 90 characters: the maximum length, with a one-character HRP.
		"11" + strings.Repeat("q", 82) + "c8247j",
		"split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
		"?1ezyfcl",
	} {
		t.Run(s, func(t *testing.T) {
			hrp, data, err := decodeBech32(s)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			got, err := bech32Encode(hrp, data)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if want := strings.ToLower(s); got != want {
				t.Errorf("re-encoded = %s, want %s", got, want)
			}
		})
	}
}

// TestBech32InvalidVectors uses BIP-173's invalid strings. They mostly
// exercise the test decoder, but the checksum cases also prove that
// bech32Polymod rejects what it must.
func TestBech32InvalidVectors(t *testing.T) {
	for _, tc := range []struct{ s, why string }{
		{"\x201nwldj5", "HRP character out of range"},
		{"\x7f1axkwrx", "HRP character out of range"},
		{"\x801eym55h", "HRP character out of range"},
		{"an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx", "overall max length exceeded"},
		{"pzry9x0s0muk", "no separator character"},
		{"1pzry9x0s0muk", "empty HRP"},
		{"x1b4n0q5v", "invalid data character"},
		{"li1dgmt3", "too short checksum"},
		{"de1lg7wt\xff", "invalid character in checksum"},
		{"A1G7SGD8", "checksum calculated with uppercase form of HRP"},
		{"10a06t8", "empty HRP"},
		{"1qzzfhee", "empty HRP"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			if hrp, data, err := decodeBech32(tc.s); err == nil {
				t.Errorf("decode(%q) = %q, %v; want error (%s)", tc.s, hrp, data, tc.why)
			}
		})
	}
}

// TestSegwitV0Address uses BIP-173's valid v0 segwit addresses, including
// the 32-byte P2WSH ones, so both program lengths go through toWords.
func TestSegwitV0Address(t *testing.T) {
	for _, tc := range []struct{ addr, script string }{
		{"BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"},
		{"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"},
		{"tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy", "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			script, err := hex.DecodeString(tc.script)
			if err != nil {
				t.Fatal(err)
			}
			// A v0 scriptPubKey is OP_0, a push of the program length,
			// then the program.
			program := script[2:]
			hrp := strings.ToLower(tc.addr[:2])
			got, err := segwitV0Address(hrp, program)
			if err != nil {
				t.Fatalf("segwitV0Address: %v", err)
			}
			if want := strings.ToLower(tc.addr); got != want {
				t.Errorf("got %s, want %s", got, want)
			}

			// Round trip through the test decoder to check the padding
			// toWords produced is the canonical one.
			_, data, err := decodeBech32(got)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			back, err := fromWords(data[1:])
			if err != nil {
				t.Fatalf("fromWords: %v", err)
			}
			if data[0] != 0 || !bytes.Equal(back, program) {
				t.Errorf("decoded version %d program %x, want 0 %x", data[0], back, program)
			}
		})
	}
}

func TestSegwitV0AddressRejectsProgramLength(t *testing.T) {
	for _, n := range []int{0, 19, 21, 31, 33, 40} {
		if _, err := segwitV0Address("bc", make([]byte, n)); err == nil {
			t.Errorf("program length %d accepted, want error", n)
		}
	}
}

func TestBech32EncodeRejectsWideValues(t *testing.T) {
	if _, err := bech32Encode("bc", []byte{0, 32}); err == nil {
		t.Error("data value 32 accepted, want error")
	}
}

// TestChecksumHex uses the test cases published in EIP-55 itself.
func TestChecksumHex(t *testing.T) {
	for _, want := range []string{
		// All caps.
		"0x52908400098527886E0F7030069857D2E4169EE7",
		"0x8617E340B3D01FA5F11F306F4090FD50E238070D",
		// All lower.
		"0xde709f2102306220921060314715629080e2fb77",
		// Normal.
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
	} {
		t.Run(want, func(t *testing.T) {
			raw, err := hex.DecodeString(strings.ToLower(want[2:]))
			if err != nil {
				t.Fatal(err)
			}
			if got := checksumHex(raw); got != want {
				t.Errorf("checksumHex = %s, want %s", got, want)
			}
		})
	}
}
