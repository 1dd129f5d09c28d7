package address

import (
	"errors"
	"fmt"
	"strings"
)

// This file implements the BIP-173 bech32 encoder and its BIP-350 bech32m
// variant: only encoding. Witness version 0 uses bech32, versions 1 and
// above (taproot) bech32m, which differs only in the final XOR constant;
// each address function fixes its version and constant, so nobody can
// produce an address with the wrong checksum through this code.

const (
	bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	// bech32MaxLen is BIP-173's limit on the whole string, which is what
	// bounds the checksum's error-detection guarantees.
	bech32MaxLen      = 90
	bech32ChecksumLen = 6
)

// bech32Generator holds the coefficients of BIP-173's BCH generator.
var bech32Generator = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

// bech32Polymod is the checksum function from BIP-173. A string is valid
// when the polymod of its expanded HRP and data (checksum included) is 1.
func bech32Polymod(values []byte) uint32 {
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i, g := range bech32Generator {
			if (top>>uint(i))&1 == 1 {
				chk ^= g
			}
		}
	}
	return chk
}

// bech32HRPExpand feeds the HRP into the checksum as high bits, a zero
// separator and low bits, so that the HRP is covered by the checksum.
func bech32HRPExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

// Checksum constants: the polymod of a valid string equals one of them.
const (
	bech32Const  uint32 = 1          // BIP-173
	bech32mConst uint32 = 0x2bc830a3 // BIP-350
)

// bech32Checksum computes the six 5-bit checksum values for hrp and data
// under checksum constant c.
func bech32Checksum(hrp string, data []byte, c uint32) []byte {
	values := append(bech32HRPExpand(hrp), data...)
	values = append(values, make([]byte, bech32ChecksumLen)...)
	mod := bech32Polymod(values) ^ c
	out := make([]byte, bech32ChecksumLen)
	for i := range out {
		out[i] = byte(mod>>(5*(5-uint(i)))) & 31
	}
	return out
}

// validateHRP applies BIP-173's HRP rules. Upper case is refused rather
// than folded: the encoder always emits lower case, and silently changing
// the caller's network prefix would hide a configuration mistake.
func validateHRP(hrp string) error {
	if len(hrp) < 1 || len(hrp) > 83 {
		return fmt.Errorf("%w: length %d, want 1 to 83", ErrInvalidHRP, len(hrp))
	}
	for i := 0; i < len(hrp); i++ {
		c := hrp[i]
		if c < 33 || c > 126 {
			return fmt.Errorf("%w: character 0x%02x at %d is outside US-ASCII 33-126", ErrInvalidHRP, c, i)
		}
		if c >= 'A' && c <= 'Z' {
			return fmt.Errorf("%w: %q must be lower case", ErrInvalidHRP, hrp)
		}
	}
	return nil
}

// bech32Encode encodes 5-bit data values under hrp with a bech32 checksum.
func bech32Encode(hrp string, data []byte) (string, error) {
	return bech32EncodeConst(hrp, data, bech32Const)
}

// bech32EncodeConst encodes 5-bit data values under hrp with the checksum
// of constant c (bech32Const or bech32mConst).
func bech32EncodeConst(hrp string, data []byte, c uint32) (string, error) {
	if err := validateHRP(hrp); err != nil {
		return "", err
	}
	if n := len(hrp) + 1 + len(data) + bech32ChecksumLen; n > bech32MaxLen {
		return "", fmt.Errorf("%w: encoded length %d exceeds %d", ErrInvalidHRP, n, bech32MaxLen)
	}
	var sb strings.Builder
	sb.Grow(len(hrp) + 1 + len(data) + bech32ChecksumLen)
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, v := range data {
		if v > 31 {
			return "", errors.New("address: bech32 data value exceeds 5 bits")
		}
		sb.WriteByte(bech32Charset[v])
	}
	for _, v := range bech32Checksum(hrp, data, c) {
		sb.WriteByte(bech32Charset[v])
	}
	return sb.String(), nil
}

// toWords regroups bytes into 5-bit values, zero-padding the last group,
// as BIP-173 specifies for witness programs.
func toWords(b []byte) []byte {
	out := make([]byte, 0, (len(b)*8+4)/5)
	var acc uint32
	var bits uint
	for _, v := range b {
		acc = acc<<8 | uint32(v)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

// segwitV0Address encodes a witness version 0 program: 20 bytes for
// P2WPKH, 32 bytes for P2WSH. Any other length is unspendable for v0.
func segwitV0Address(hrp string, program []byte) (string, error) {
	if len(program) != 20 && len(program) != 32 {
		return "", fmt.Errorf("address: witness v0 program length %d, want 20 or 32", len(program))
	}
	data := append([]byte{0}, toWords(program)...)
	return bech32Encode(hrp, data)
}

// segwitV1Address encodes a witness version 1 (taproot) program of 32
// bytes with the bech32m checksum.
func segwitV1Address(hrp string, program []byte) (string, error) {
	if len(program) != 32 {
		return "", fmt.Errorf("address: witness v1 program length %d, want 32", len(program))
	}
	data := append([]byte{1}, toWords(program)...)
	return bech32EncodeConst(hrp, data, bech32mConst)
}
