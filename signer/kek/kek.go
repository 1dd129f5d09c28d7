// Package kek encrypts a signer's key shares at rest.
//
// Each signer holds one key-encryption key (KEK): 32 random bytes in a file
// only its user can read. Every share is sealed with envelope encryption: a
// fresh random AES-256 data key encrypts the share, and the KEK encrypts
// the data key. Both layers are AES-256-GCM and both bind the wallet id and
// signer id as associated data, so a blob copied to another wallet's row or
// another signer's database does not open. A signer's database alone
// therefore reveals nothing.
//
// Per-share data keys keep the number of encryptions under the KEK to one
// per share, so random 96-bit GCM nonces stay far below their collision
// bound, and leave room to re-wrap data keys under a new KEK without
// touching share ciphertexts.
package kek

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// KeySize is the KEK length in bytes (AES-256).
const KeySize = 32

var (
	// ErrDecrypt means a blob does not open: it was altered, is truncated,
	// was sealed under another KEK, or for another wallet or signer.
	ErrDecrypt = errors.New("kek: decryption failed")
	// ErrInsecurePermissions means the KEK file is accessible to group or
	// others.
	ErrInsecurePermissions = errors.New("kek: key file is readable by group or others")
	// ErrInvalidKey means the key file or key bytes are not a KEK.
	ErrInvalidKey = errors.New("kek: invalid key")
	// ErrInvalidArgument reports an empty or oversized wallet or signer id.
	ErrInvalidArgument = errors.New("kek: invalid argument")
)

// KEK is a loaded key-encryption key. It is safe for concurrent use until
// Destroy.
type KEK struct {
	key [KeySize]byte
}

// New wraps raw key bytes (copied) as a KEK, for keys that come from
// somewhere other than a file, such as a secrets manager.
func New(key []byte) (*KEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalidKey, len(key), KeySize)
	}
	k := &KEK{}
	copy(k.key[:], key)
	return k, nil
}

// Load reads a KEK file: exactly KeySize raw bytes, a regular file with no
// group or other permission bits. Symbolic links are followed (secret
// mounts use them); the checks apply to the file actually opened.
func Load(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("kek: open key file: %w", err)
	}
	defer f.Close()
	// Stat the open descriptor, not the path, so the file checked is the
	// file read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kek: stat key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalidKey, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrInsecurePermissions, path, perm, path)
	}
	// Read one byte more than a key so a longer file is detected without
	// trusting the size from stat.
	var buf [KeySize + 1]byte
	n, err := io.ReadFull(f, buf[:])
	defer clear(buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("kek: read key file: %w", err)
	}
	if n != KeySize {
		return nil, fmt.Errorf("%w: %s must hold exactly %d bytes", ErrInvalidKey, path, KeySize)
	}
	return New(buf[:KeySize])
}

// Create generates a new KEK and writes it to path with mode 0600. It
// refuses to overwrite an existing file, since replacing a KEK makes every
// share sealed under the old one unreadable. The file and its directory
// are synced before Create returns.
func Create(path string) (*KEK, error) {
	k := &KEK{}
	if _, err := rand.Read(k.key[:]); err != nil {
		return nil, fmt.Errorf("kek: generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kek: create key file: %w", err)
	}
	if err := writeSync(f, k.key[:]); err != nil {
		_ = os.Remove(path)
		k.Destroy()
		return nil, fmt.Errorf("kek: write key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		// Best effort: some filesystems refuse fsync on directories.
		_ = d.Sync()
		_ = d.Close()
	}
	return k, nil
}

func writeSync(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Destroy zeroes the key. The KEK must not be used afterwards.
func (k *KEK) Destroy() { clear(k.key[:]) }

// Blob layout (version 1):
//
//	0x01 | wrap nonce (12) | wrapped data key (32+16) | data nonce (12) | ciphertext (len+16)
const (
	version1    = 1
	nonceSize   = 12
	tagSize     = 16
	wrappedSize = KeySize + tagSize
	headerSize  = 1 + nonceSize + wrappedSize + nonceSize
	maxIDLen    = 1024
)

// Seal encrypts plaintext (a serialized key share) for the given wallet and
// signer.
func (k *KEK) Seal(walletID, signerID string, plaintext []byte) ([]byte, error) {
	if err := checkIDs(walletID, signerID); err != nil {
		return nil, err
	}
	var dek [KeySize]byte
	defer clear(dek[:])
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = version1
	wrapNonce := out[1 : 1+nonceSize]
	dataNonce := out[headerSize-nonceSize : headerSize]
	if _, err := rand.Read(dek[:]); err != nil {
		return nil, fmt.Errorf("kek: generate data key: %w", err)
	}
	if _, err := rand.Read(wrapNonce); err != nil {
		return nil, fmt.Errorf("kek: generate nonce: %w", err)
	}
	if _, err := rand.Read(dataNonce); err != nil {
		return nil, fmt.Errorf("kek: generate nonce: %w", err)
	}
	wrap, err := newGCM(k.key[:])
	if err != nil {
		return nil, err
	}
	wrap.Seal(out[1+nonceSize:1+nonceSize], wrapNonce, dek[:], aad(labelWrap, version1, walletID, signerID))
	data, err := newGCM(dek[:])
	if err != nil {
		return nil, err
	}
	return data.Seal(out, dataNonce, plaintext, aad(labelData, version1, walletID, signerID)), nil
}

// Open decrypts a blob made by Seal for the same wallet and signer. Every
// failure is ErrDecrypt: which check failed tells an attacker nothing useful
// and an operator nothing actionable.
func (k *KEK) Open(walletID, signerID string, blob []byte) ([]byte, error) {
	if err := checkIDs(walletID, signerID); err != nil {
		return nil, err
	}
	if len(blob) < headerSize+tagSize || blob[0] != version1 {
		return nil, fmt.Errorf("%w: not a version 1 blob", ErrDecrypt)
	}
	wrapNonce := blob[1 : 1+nonceSize]
	wrapped := blob[1+nonceSize : 1+nonceSize+wrappedSize]
	dataNonce := blob[headerSize-nonceSize : headerSize]
	ct := blob[headerSize:]

	wrap, err := newGCM(k.key[:])
	if err != nil {
		return nil, err
	}
	var dek [KeySize]byte
	defer clear(dek[:])
	if _, err := wrap.Open(dek[:0], wrapNonce, wrapped, aad(labelWrap, version1, walletID, signerID)); err != nil {
		return nil, ErrDecrypt
	}
	data, err := newGCM(dek[:])
	if err != nil {
		return nil, err
	}
	pt, err := data.Open(nil, dataNonce, ct, aad(labelData, version1, walletID, signerID))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Distinct labels for the two layers, so the wrapped data key can never be
// taken for share ciphertext or the reverse.
const (
	labelWrap = "sigil/kek/v1/wrap"
	labelData = "sigil/kek/v1/data"
)

// aad encodes the binding unambiguously: length-prefixed ids, so
// ("ab", "c") and ("a", "bc") differ.
func aad(label string, version byte, walletID, signerID string) []byte {
	b := make([]byte, 0, len(label)+2+4+len(walletID)+len(signerID))
	b = append(b, label...)
	b = append(b, 0, version)
	b = binary.BigEndian.AppendUint16(b, uint16(len(walletID)))
	b = append(b, walletID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(signerID)))
	return append(b, signerID...)
}

func checkIDs(walletID, signerID string) error {
	if walletID == "" || signerID == "" || len(walletID) > maxIDLen || len(signerID) > maxIDLen {
		return fmt.Errorf("%w: wallet and signer ids must be 1 to %d bytes", ErrInvalidArgument, maxIDLen)
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	return aead, nil
}
