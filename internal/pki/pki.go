// Package pki is the operator PKI of Sigil's node port.
//
// The coordinator's node port accepts only mutual TLS. Every signer, HSM driver and coordinator
// holds an ECDSA P-256 key pair certified by one operator CA; a peer's identity is its
// certificate: the Common Name is the node's name and the single Organizational Unit is its role
// ("signer", "driver" or "server"). Handlers authorise callers with [IdentityFromTLS], so a
// signer can only ever act as itself.
//
// The package writes plain PEM files (certificates 0644, private keys 0600) and never overwrites
// an existing file: replacing a CA or a node's key is an operator decision, not a side effect.
// [EnsureDevPKI] builds the same layout idempotently for the all-in-one `sigil dev` mode.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Roles a node certificate can carry in its Organizational Unit.
const (
	RoleSigner = "signer"
	RoleDriver = "driver"
	RoleServer = "server"
)

// File names inside a CA directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// File modes: certificates are public, keys readable by their owner only.
const (
	certFileMode os.FileMode = 0o644
	keyFileMode  os.FileMode = 0o600
	dirMode      os.FileMode = 0o700
)

// clockSkew backdates NotBefore so that a certificate issued on one host is already valid on a
// peer whose clock runs a little behind; otherwise a freshly issued node fails its first handshake.
const clockSkew = 5 * time.Minute

var (
	// ErrInvalidName reports a node name outside 1-64 characters of [a-z0-9-_.].
	ErrInvalidName = errors.New("pki: invalid name")
	// ErrInvalidRole reports a role other than signer, driver or server.
	ErrInvalidRole = errors.New("pki: invalid role")
	// ErrInvalidIdentity reports a certificate that does not carry a valid Sigil identity.
	ErrInvalidIdentity = errors.New("pki: certificate carries no valid identity")
	// ErrUnverified reports a TLS connection without a verified client or server chain.
	ErrUnverified = errors.New("pki: no verified certificate chain")
)

// ValidRole reports whether role is one of the roles of [RoleSigner], [RoleDriver], [RoleServer].
func ValidRole(role string) bool {
	switch role {
	case RoleSigner, RoleDriver, RoleServer:
		return true
	}
	return false
}

// ValidateName checks a node name: 1 to 64 characters of lowercase letters, digits, '-', '_'
// and '.', starting with a letter or digit. The name becomes a file name and a certificate CN,
// so the rule keeps it free of path separators and of anything a shell or a log would mangle.
func ValidateName(name string) error {
	if len(name) < 1 || len(name) > 64 {
		return fmt.Errorf("%w %q: must be 1 to 64 characters", ErrInvalidName, name)
	}
	for i, c := range name {
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if i == 0 && !alnum {
			return fmt.Errorf("%w %q: must start with a lowercase letter or digit", ErrInvalidName, name)
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("%w %q: only a-z, 0-9, '-', '_' and '.' are allowed", ErrInvalidName, name)
		}
	}
	return nil
}

func newKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate P-256 key: %w", err)
	}
	return key, nil
}

// newSerial returns a random positive 128-bit serial number, as the CA/Browser baseline asks
// for at least 64 bits of entropy so that serials cannot be predicted.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// refuseExisting returns an error wrapping fs.ErrExist when any of paths exists, so that a
// command fails before it generates anything rather than half way through.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return fmt.Errorf("pki: %s already exists; refusing to overwrite it (move it away first): %w", p, fs.ErrExist)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pki: check %s: %w", p, err)
		}
	}
	return nil
}

// writeNew creates path with exactly mode and writes data to it. O_EXCL makes the refusal to
// overwrite atomic even when two processes race; the explicit Chmod undoes the umask, so a key
// is 0600 and a certificate 0644 whatever the caller's umask.
func writeNew(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("pki: %s already exists; refusing to overwrite it: %w", path, err)
		}
		return fmt.Errorf("pki: create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(path) // never leave a truncated key or certificate behind
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("pki: chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	// A key that is lost in a crash after we reported success would strand the certificate.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("pki: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: close %s: %w", path, err)
	}
	return nil
}

func ensureDir(dir string) error {
	if dir == "" {
		return errors.New("pki: directory must not be empty")
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("pki: create directory %s: %w", dir, err)
	}
	return nil
}

// readPEMBlock reads the first PEM block of type typ from path.
func readPEMBlock(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", path, err)
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("pki: %s holds no PEM %s block", path, typ)
		}
		if block.Type == typ {
			return block.Bytes, nil
		}
	}
}

// LoadCertificate parses the first certificate of the PEM file at path.
func LoadCertificate(path string) (*x509.Certificate, error) {
	der, err := readPEMBlock(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse certificate %s: %w", path, err)
	}
	return cert, nil
}

// loadECKey parses a PKCS#8 (or SEC 1) P-256 private key from the PEM file at path.
func loadECKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("pki: %s holds no PEM block", path)
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse private key %s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("pki: %s is a %T, want an ECDSA key", path, k)
		}
		return ec, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parse private key %s: %w", path, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("pki: %s holds a PEM %q block, want a private key", path, block.Type)
	}
}

func caPaths(caDir string) (certPath, keyPath string) {
	return filepath.Join(caDir, CACertFile), filepath.Join(caDir, CAKeyFile)
}
