// Package escrow handles HSM-wrapped wallet keys in software, for offline
// recovery with escrowed master key material (`sigil hsm
// generate-master-key`): it undoes CKM_AES_KEY_WRAP_PAD (AES key wrap with
// padding, RFC 5649), reads the PKCS#8 secp256k1 key inside, and computes
// the master key fingerprint the HSM reports, so a wrong master key is
// named as such. Drivers never use it: they unwrap inside the HSM.
package escrow

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrUnwrap reports a blob that does not unwrap under the key: the wrong
// master key, or a damaged blob.
var ErrUnwrap = errors.New("escrow: the wrapped key does not unwrap under this master key (wrong key, or a damaged blob)")

// kwpIV is RFC 5649's alternative initial value prefix.
var kwpIV = []byte{0xa6, 0x59, 0x59, 0xa6}

// Wrap is AES key wrap with padding (RFC 5649) of plaintext under kek.
func Wrap(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("escrow: %w", err)
	}
	if len(plaintext) == 0 {
		return nil, errors.New("escrow: nothing to wrap")
	}
	n := (len(plaintext) + 7) / 8
	var a [8]byte
	copy(a[:4], kwpIV)
	binary.BigEndian.PutUint32(a[4:], uint32(len(plaintext)))
	r := make([]byte, 8*n)
	copy(r, plaintext)
	defer clear(r)
	if n == 1 {
		out := make([]byte, 16)
		copy(out, a[:])
		copy(out[8:], r)
		block.Encrypt(out, out)
		return out, nil
	}
	var b [16]byte
	defer clear(b[:])
	for j := range 6 {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], r[8*(i-1):8*i])
			block.Encrypt(b[:], b[:])
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^uint64(n*j+i))
			copy(r[8*(i-1):8*i], b[8:])
		}
	}
	return append(a[:], r...), nil
}

// Unwrap undoes Wrap. The caller zeroes the result.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("escrow: %w", err)
	}
	if len(wrapped)%8 != 0 || len(wrapped) < 16 {
		return nil, fmt.Errorf("%w: %d bytes is no RFC 5649 blob", ErrUnwrap, len(wrapped))
	}
	n := len(wrapped)/8 - 1
	var a [8]byte
	r := make([]byte, 8*n)
	if n == 1 {
		var p [16]byte
		block.Decrypt(p[:], wrapped)
		copy(a[:], p[:8])
		copy(r, p[8:])
		clear(p[:])
	} else {
		unwrapRounds(block, wrapped, &a, r, n)
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if !bytes.Equal(a[:4], kwpIV) || mli <= 8*(n-1) || mli > 8*n || !bytes.Equal(r[mli:], make([]byte, 8*n-mli)) {
		clear(r)
		return nil, ErrUnwrap
	}
	return r[:mli], nil
}

func unwrapRounds(block cipher.Block, c []byte, a *[8]byte, r []byte, n int) {
	copy(a[:], c[:8])
	copy(r, c[8:])
	var b [16]byte
	defer clear(b[:])
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^uint64(n*j+i))
			copy(b[8:], r[8*(i-1):8*i])
			block.Decrypt(b[:], b[:])
			copy(a[:], b[:8])
			copy(r[8*(i-1):8*i], b[8:])
		}
	}
}

// Fingerprint is the master key fingerprint the HSM reports for this
// material (hsm.MasterKeyFingerprint): the first 8 bytes, hex, of the
// SHA-256 of 32 zero bytes wrapped under it.
func Fingerprint(material []byte) (string, error) {
	w, err := Wrap(material, make([]byte, 32))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(w)
	return hex.EncodeToString(sum[:8]), nil
}

// secp256k1 is the curve's object identifier.
var secp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}

// Secp256k1Scalar returns the 32-byte private scalar of a PKCS#8
// PrivateKeyInfo holding a secp256k1 EC key (what CKM_AES_KEY_WRAP_PAD
// wraps). The caller zeroes the result.
func Secp256k1Scalar(pkcs8 []byte) ([]byte, error) {
	var info struct {
		Version    int
		Algo       pkix.AlgorithmIdentifier
		PrivateKey []byte
	}
	if _, err := asn1.Unmarshal(pkcs8, &info); err != nil {
		return nil, fmt.Errorf("escrow: PKCS#8: %w", err)
	}
	var params asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(info.Algo.Parameters.FullBytes, &params); err != nil || !params.Equal(secp256k1) {
		return nil, fmt.Errorf("escrow: PKCS#8 key on curve %v, want secp256k1", params)
	}
	var ec struct {
		Version    int
		PrivateKey []byte
		Rest       asn1.RawValue `asn1:"optional"`
		Rest2      asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(info.PrivateKey, &ec); err != nil {
		return nil, fmt.Errorf("escrow: ECPrivateKey: %w", err)
	}
	defer clear(ec.PrivateKey)
	if len(ec.PrivateKey) > 32 || len(ec.PrivateKey) == 0 {
		return nil, fmt.Errorf("escrow: private scalar is %d bytes", len(ec.PrivateKey))
	}
	scalar := make([]byte, 32)
	copy(scalar[32-len(ec.PrivateKey):], ec.PrivateKey)
	return scalar, nil
}
