package reqsig

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// PrivateKey is a request key: what an application signs requests with.
type PrivateKey struct {
	Algorithm string
	signer    crypto.Signer
}

// GenerateKey makes a new request key of the given algorithm.
func GenerateKey(alg string) (*PrivateKey, error) {
	switch alg {
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return &PrivateKey{Algorithm: alg, signer: k}, err
	case ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return &PrivateKey{Algorithm: alg, signer: k}, err
	default:
		return nil, fmt.Errorf("unknown request key algorithm %q: want %s or %s", alg, Ed25519, ECDSAP256)
	}
}

// MarshalPEM encodes the key as a PKCS #8 "PRIVATE KEY" PEM block, which
// the Go SDK, Node and WebCrypto (importKey "pkcs8") all read.
func (k *PrivateKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM reads a request key written by MarshalPEM.
func ParsePrivateKeyPEM(data []byte) (*PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" (PKCS #8) block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return &PrivateKey{Algorithm: Ed25519, signer: k}, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("an ECDSA request key must be on P-256")
		}
		return &PrivateKey{Algorithm: ECDSAP256, signer: k}, nil
	default:
		return nil, fmt.Errorf("request keys are Ed25519 or ECDSA P-256, not %T", key)
	}
}

// LoadPrivateKeyFile reads a request key file, refusing one that group or
// others may access.
func LoadPrivateKeyFile(path string) (*PrivateKey, error) {
	data, err := ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadSecretFile reads a file holding a secret, refusing a file that is not
// regular or that has group or other permission bits.
func ReadSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %#o gives group or others access to a secret; chmod 600 it", path, perm)
	}
	return os.ReadFile(path)
}

// PublicKey returns the raw public key: 32 bytes (Ed25519) or the 65-byte
// uncompressed point (P-256).
func (k *PrivateKey) PublicKey() []byte {
	switch p := k.signer.Public().(type) {
	case ed25519.PublicKey:
		return bytes.Clone(p)
	case *ecdsa.PublicKey:
		b, _ := p.Bytes() // a P-256 key always encodes
		return b
	}
	return nil
}

// PublicText is the public key as written in a trusted-keys file.
func (k *PrivateKey) PublicText() string {
	return k.Algorithm + ":" + base64.StdEncoding.EncodeToString(k.PublicKey())
}

// Sign signs r, whose Algorithm and PublicKey it sets, and returns the
// 64-byte signature.
func (k *PrivateKey) Sign(r *Request) ([]byte, error) {
	r.Algorithm, r.PublicKey = k.Algorithm, k.PublicKey()
	msg := r.Canonical()
	switch s := k.signer.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(s, msg), nil
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		rr, ss, err := ecdsa.Sign(rand.Reader, s, h[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		rr.FillBytes(out[:32])
		ss.FillBytes(out[32:])
		return out, nil
	}
	return nil, errors.New("unusable request key")
}

// ParsePublicText reads "ALGORITHM:BASE64" as written by PublicText.
func ParsePublicText(s string) (alg string, pub []byte, err error) {
	alg, b64, ok := strings.Cut(s, ":")
	if !ok {
		return "", nil, fmt.Errorf("public key %q: want ALGORITHM:BASE64", s)
	}
	pub, err = base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", nil, fmt.Errorf("public key %q: %w", s, err)
	}
	if err := checkPublicKey(alg, pub); err != nil {
		return "", nil, err
	}
	return alg, pub, nil
}

var keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// Trusted is the set of request keys a node trusts, by name.
type Trusted struct {
	byKey map[string]string // algorithm + ":" + raw key -> name
}

// TrustedKey is one entry of a trusted-keys file.
type TrustedKey struct {
	Name, Algorithm string
	PublicKey       []byte
}

// NewTrusted builds a trust set.
func NewTrusted(keys ...TrustedKey) (*Trusted, error) {
	t := &Trusted{byKey: map[string]string{}}
	names := map[string]bool{}
	for _, k := range keys {
		if !keyNamePattern.MatchString(k.Name) {
			return nil, fmt.Errorf("key name %q: want 1 to 64 letters, digits or ._@-", k.Name)
		}
		if err := checkPublicKey(k.Algorithm, k.PublicKey); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.Name, err)
		}
		id := k.Algorithm + ":" + string(k.PublicKey)
		if names[k.Name] || t.byKey[id] != "" {
			return nil, fmt.Errorf("key %s: listed twice (by name or by key)", k.Name)
		}
		names[k.Name], t.byKey[id] = true, k.Name
	}
	return t, nil
}

// Name returns the name of a trusted key, or false.
func (t *Trusted) Name(alg string, pub []byte) (string, bool) {
	if t == nil {
		return "", false
	}
	n, ok := t.byKey[alg+":"+string(pub)]
	return n, ok
}

// Len is how many keys are trusted.
func (t *Trusted) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byKey)
}

// LoadTrusted reads a trusted-keys file: one "NAME ALGORITHM:BASE64" per
// line (as `sigil request-key init` prints), blank lines and # comments
// ignored. A file others may write is refused: whoever can write it
// decides what this node signs.
func LoadTrusted(path string) (*Trusted, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("%s: mode %#o lets group or others change the keys this node trusts; chmod 644 (or 600) it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []TrustedKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want NAME ALGORITHM:BASE64", path, n)
		}
		alg, pub, err := ParsePublicText(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		keys = append(keys, TrustedKey{Name: f[0], Algorithm: alg, PublicKey: pub})
	}
	t, err := NewTrusted(keys...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
