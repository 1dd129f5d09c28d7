package ethtest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/ethereum/go-ethereum/accounts"

	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/ethtest"
)

// Signatures in these tests are made with decred's secp256k1 and checked
// with go-ethereum and OpenSSL, the same split as in real end-to-end tests:
// the signer under test on one side, independent verifiers on the other.

var testKeys = []struct {
	name string
	priv string
}{
	{"one", "0000000000000000000000000000000000000000000000000000000000000001"},
	{"deadbeef", "00000000000000000000000000000000000000000000000000000000deadbeef"},
	{"web3.js docs account", "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"},
	{"n-1", "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"},
}

var testDigests = []struct {
	name   string
	digest []byte
}{
	{"sha256(sigil)", sha256Sum("sigil")},
	{"zero", make([]byte, 32)},
	// Larger than the group order, so the signer must reduce it mod n the
	// same way the verifiers do.
	{"all ones", bytes.Repeat([]byte{0xff}, 32)},
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// signed is one signature in every encoding the helpers take.
type signed struct {
	pub    []byte // compressed
	addr   string // from Sigil's address package
	rsv    []byte // r || s || v, v in {27, 28}
	r, s   []byte
	der    []byte
	digest []byte
}

func sign(t testing.TB, privHex string, digest []byte) signed {
	t.Helper()
	raw, err := hex.DecodeString(privHex)
	if err != nil {
		t.Fatal(err)
	}
	priv := secp256k1.PrivKeyFromBytes(raw)
	pub := priv.PubKey().SerializeCompressed()
	addr, err := address.Ethereum(pub)
	if err != nil {
		t.Fatalf("address.Ethereum: %v", err)
	}

	// SignCompact returns v || r || s with v = 27 + recid + 4 for a
	// compressed key; Ethereum wants r || s || (27 + recid).
	compact := ecdsa.SignCompact(priv, digest, true)
	recID := compact[0] - 27 - 4
	rsv := append(bytes.Clone(compact[1:65]), 27+recID)

	var r, s secp256k1.ModNScalar
	r.SetByteSlice(compact[1:33])
	s.SetByteSlice(compact[33:65])
	return signed{
		pub:    pub,
		addr:   addr,
		rsv:    rsv,
		r:      compact[1:33],
		s:      compact[33:65],
		der:    ecdsa.NewSignature(&r, &s).Serialize(),
		digest: digest,
	}
}

func TestValidSignatures(t *testing.T) {
	for _, k := range testKeys {
		for _, d := range testDigests {
			t.Run(k.name+"/"+d.name, func(t *testing.T) {
				sig := sign(t, k.priv, d.digest)

				got, err := ethtest.RecoverAddress(sig.digest, sig.rsv)
				if err != nil {
					t.Fatalf("RecoverAddress(v=27/28): %v", err)
				}
				// Exact comparison: go-ethereum's EIP-55 casing must match
				// Sigil's, not just the bytes.
				if got != sig.addr {
					t.Errorf("RecoverAddress = %s, address.Ethereum = %s", got, sig.addr)
				}

				raw := bytes.Clone(sig.rsv)
				raw[64] -= 27
				if got, err := ethtest.RecoverAddress(sig.digest, raw); err != nil || got != sig.addr {
					t.Errorf("RecoverAddress(v=0/1) = %s, %v; want %s", got, err, sig.addr)
				}

				if err := ethtest.VerifyHash(sig.pub, sig.digest, sig.r, sig.s); err != nil {
					t.Errorf("VerifyHash: %v", err)
				}

				ethtest.VerifyDER(t, sig.pub, sig.digest, sig.der)
			})
		}
	}
}

func TestVerifyPersonalSign(t *testing.T) {
	for _, tc := range []struct {
		name    string
		message []byte
	}{
		{"hello world", []byte("hello world")},
		{"empty", nil},
		{"utf-8", []byte("héllo, 世界")}, // Length is bytes, not runes.
		{"binary 1000 bytes", bytes.Repeat([]byte{0x00, 0x19, 0xff}, 334)[:1000]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Sigil's digest must equal go-ethereum's before anything
			// signed over it can be trusted.
			digest := address.EIP191Digest(tc.message)
			if want := accounts.TextHash(tc.message); !bytes.Equal(digest, want) {
				t.Fatalf("address.EIP191Digest = %x, go-ethereum TextHash = %x", digest, want)
			}
			sig := sign(t, testKeys[2].priv, digest)

			hexPart := strings.TrimPrefix(sig.addr, "0x")
			for _, want := range []string{sig.addr, "0x" + strings.ToLower(hexPart), "0x" + strings.ToUpper(hexPart)} {
				if err := ethtest.VerifyPersonalSign(tc.message, sig.rsv, want); err != nil {
					t.Errorf("VerifyPersonalSign(want %s): %v", want, err)
				}
			}
		})
	}
}

// flip returns a copy of b with one bit of byte i inverted.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestTamperedSignaturesFail(t *testing.T) {
	message := []byte("transfer 1 ETH to 0x0000000000000000000000000000000000000000")
	sig := sign(t, testKeys[1].priv, address.EIP191Digest(message))
	other := sign(t, testKeys[2].priv, sig.digest)

	t.Run("RecoverAddress", func(t *testing.T) {
		for _, tc := range []struct {
			name        string
			digest, rsv []byte
		}{
			{"r flipped", sig.digest, flip(sig.rsv, 31)},
			{"s flipped", sig.digest, flip(sig.rsv, 63)},
			{"v flipped", sig.digest, flip(sig.rsv, 64)}, // 27 <-> 26 is malformed, 28 <-> 29 too.
			{"v other parity", sig.digest, append(bytes.Clone(sig.rsv[:64]), 27+28-sig.rsv[64])},
			{"digest flipped", flip(sig.digest, 0), sig.rsv},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// A tampered signature usually still recovers some key;
				// what matters is that it is not the signer's.
				got, err := ethtest.RecoverAddress(tc.digest, tc.rsv)
				if err == nil && got == sig.addr {
					t.Errorf("recovered the signer's address %s from a tampered signature", got)
				}
			})
		}
	})

	t.Run("VerifyPersonalSign", func(t *testing.T) {
		wrongCase := []byte(sig.addr)
		for i := 2; i < len(wrongCase); i++ {
			if c := wrongCase[i]; c >= 'a' && c <= 'f' {
				wrongCase[i] = c - 'a' + 'A'
				break
			}
		}
		for _, tc := range []struct {
			name    string
			message []byte
			rsv     []byte
			want    string
			wantErr error
		}{
			{"s flipped", message, flip(sig.rsv, 40), sig.addr, ethtest.ErrBadSignature},
			{"message changed", append(bytes.Clone(message), '0'), sig.rsv, sig.addr, ethtest.ErrBadSignature},
			{"other signer", message, other.rsv, sig.addr, ethtest.ErrBadSignature},
			{"bad EIP-55 checksum", message, sig.rsv, string(wrongCase), ethtest.ErrMalformed},
			{"not an address", message, sig.rsv, "0x1234", ethtest.ErrMalformed},
			{"v out of range", message, append(bytes.Clone(sig.rsv[:64]), 2), sig.addr, ethtest.ErrMalformed},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := ethtest.VerifyPersonalSign(tc.message, tc.rsv, tc.want); !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
			})
		}
	})

	t.Run("VerifyHash", func(t *testing.T) {
		for _, tc := range []struct {
			name              string
			pub, digest, r, s []byte
		}{
			{"r flipped", sig.pub, sig.digest, flip(sig.r, 31), sig.s},
			{"s flipped", sig.pub, sig.digest, sig.r, flip(sig.s, 31)},
			{"digest flipped", sig.pub, flip(sig.digest, 31), sig.r, sig.s},
			{"other key", other.pub, sig.digest, sig.r, sig.s},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := ethtest.VerifyHash(tc.pub, tc.digest, tc.r, tc.s)
				// A flipped low bit of s may push it over n/2; either
				// refusal is correct, acceptance is not.
				if !errors.Is(err, ethtest.ErrBadSignature) && !errors.Is(err, ethtest.ErrHighS) {
					t.Errorf("err = %v, want ErrBadSignature", err)
				}
			})
		}
	})

	t.Run("VerifyDER", func(t *testing.T) {
		requireOpenSSL(t)
		// DER is 30 len 02 rlen r... 02 slen s...: byte 6 is inside r and
		// the last byte inside s, so flipping either keeps the DER
		// well-formed and it is the ECDSA check, not the parser, that must
		// refuse it.
		for _, tc := range []struct {
			name             string
			pub, digest, der []byte
		}{
			{"r flipped", sig.pub, sig.digest, flip(sig.der, 6)},
			{"s flipped", sig.pub, sig.digest, flip(sig.der, len(sig.der)-1)},
			{"digest flipped", sig.pub, flip(sig.digest, 0), sig.der},
			{"other key", other.pub, sig.digest, sig.der},
			{"truncated DER", sig.pub, sig.digest, sig.der[:len(sig.der)-1]},
			{"raw r||s instead of DER", sig.pub, sig.digest, sig.rsv[:64]},
		} {
			t.Run(tc.name, func(t *testing.T) {
				rec := runRecorded(t, func(tb testing.TB) { ethtest.VerifyDER(tb, tc.pub, tc.digest, tc.der) })
				if !rec.failed {
					t.Errorf("VerifyDER accepted a tampered signature (skipped=%v)", rec.skipped)
				}
			})
		}
	})
}

func TestMalformedInputs(t *testing.T) {
	sig := sign(t, testKeys[0].priv, testDigests[0].digest)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"RecoverAddress short digest", func() error { _, err := ethtest.RecoverAddress(sig.digest[:31], sig.rsv); return err }},
		{"RecoverAddress 64-byte sig", func() error { _, err := ethtest.RecoverAddress(sig.digest, sig.rsv[:64]); return err }},
		{"RecoverAddress v=29", func() error {
			_, err := ethtest.RecoverAddress(sig.digest, append(bytes.Clone(sig.rsv[:64]), 29))
			return err
		}},
		{"VerifyHash uncompressed key", func() error {
			return ethtest.VerifyHash(append([]byte{4}, make([]byte, 64)...), sig.digest, sig.r, sig.s)
		}},
		{"VerifyHash 33-byte r", func() error { return ethtest.VerifyHash(sig.pub, sig.digest, append([]byte{0}, sig.r...), sig.s) }},
		{"VerifyHash long digest", func() error { return ethtest.VerifyHash(sig.pub, append(sig.digest, 0), sig.r, sig.s) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ethtest.ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestVerifyHashHighS(t *testing.T) {
	sig := sign(t, testKeys[2].priv, testDigests[0].digest)
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16) // Group order.
	highS := new(big.Int).Sub(n, new(big.Int).SetBytes(sig.s)).FillBytes(make([]byte, 32))

	if err := ethtest.VerifyHash(sig.pub, sig.digest, sig.r, highS); !errors.Is(err, ethtest.ErrHighS) {
		t.Errorf("VerifyHash(high S) err = %v, want ErrHighS", err)
	}

	// (r, n-s) is still valid ECDSA and OpenSSL says so: VerifyDER checks
	// the signature, not Ethereum's malleability rule.
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(sig.r)
	s.SetByteSlice(highS)
	ethtest.VerifyDER(t, sig.pub, sig.digest, ecdsa.NewSignature(&r, &s).Serialize())
}

// TestShortScalars checks that r values with leading zero bytes, which
// big.Int.Bytes and DER both shorten, are padded back correctly.
func TestShortScalars(t *testing.T) {
	for i := 0; ; i++ {
		if i == 5000 { // P(no hit) = (255/256)^5000, about 3e-9.
			t.Fatal("no signature with a leading zero byte in r found")
		}
		sig := sign(t, testKeys[1].priv, sha256Sum(fmt.Sprint("short r ", i)))
		if sig.r[0] != 0 {
			continue
		}
		if err := ethtest.VerifyHash(sig.pub, sig.digest, bytes.TrimLeft(sig.r, "\x00"), sig.s); err != nil {
			t.Errorf("VerifyHash with short r: %v", err)
		}
		ethtest.VerifyDER(t, sig.pub, sig.digest, sig.der)
		return
	}
}

func TestVerifyDERWithoutOpenSSL(t *testing.T) {
	sig := sign(t, testKeys[0].priv, testDigests[0].digest)
	t.Setenv("PATH", t.TempDir()) // An empty directory: no openssl.

	for _, tc := range []struct {
		ci          string
		wantSkipped bool
		wantFailed  bool
	}{
		{ci: "", wantSkipped: true},
		{ci: "false", wantSkipped: true},
		{ci: "true", wantFailed: true},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			rec := runRecorded(t, func(tb testing.TB) { ethtest.VerifyDER(tb, sig.pub, sig.digest, sig.der) })
			if rec.skipped != tc.wantSkipped || rec.failed != tc.wantFailed {
				t.Errorf("skipped=%v failed=%v, want skipped=%v failed=%v (%s)",
					rec.skipped, rec.failed, tc.wantSkipped, tc.wantFailed, strings.Join(rec.msgs, "; "))
			}
		})
	}
}
