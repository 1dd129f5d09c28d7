package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Names and lifetimes of the development PKI. Dev certificates live long because `sigil dev`
// should keep working on a laptop for years without ceremony; production PKIs are made with
// InitCA and Issue and their own validities.
const (
	DevServerName   = "sigil-server"
	devCAName       = "Sigil development CA"
	devCAValidity   = 10 * 365 * 24 * time.Hour
	devLeafValidity = 10 * 365 * 24 * time.Hour
)

// KeyPairPaths locates a node's certificate and key files.
type KeyPairPaths struct {
	CertPath string
	KeyPath  string
	Role     string
}

// DevPKI is the file layout [EnsureDevPKI] produced.
type DevPKI struct {
	CAPath     string
	ServerCert string
	ServerKey  string
	// Nodes holds the files of each signer and driver, by name.
	Nodes map[string]KeyPairPaths
}

// EnsureDevPKI makes dir hold a complete PKI for `sigil dev`: a CA, a server certificate named
// DevServerName for localhost, and one client certificate per signer and driver name. It is
// idempotent: files that exist are checked (key matches certificate, chains to the CA, carries
// the expected identity) and reused, and only missing ones are issued, so restarting keeps every
// identity and adding a signer issues just that signer.
//
// A half-present pair, or a certificate that no longer verifies (expired, other CA, other
// role), is an error naming the files to delete rather than something silently replaced.
func EnsureDevPKI(dir string, signers, drivers []string) (*DevPKI, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	wanted, err := devNodes(signers, drivers)
	if err != nil {
		return nil, err
	}
	authority, err := ensureDevCA(dir)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(authority.cert)

	serverCert, serverKey, err := ensureNode(dir, roots, DevServerName, RoleServer)
	if err != nil {
		return nil, err
	}
	out := &DevPKI{
		CAPath:     caCertPath(dir),
		ServerCert: serverCert,
		ServerKey:  serverKey,
		Nodes:      make(map[string]KeyPairPaths, len(wanted)),
	}
	for _, n := range wanted {
		certPath, keyPath, err := ensureNode(dir, roots, n.name, n.role)
		if err != nil {
			return nil, err
		}
		out.Nodes[n.name] = KeyPairPaths{CertPath: certPath, KeyPath: keyPath, Role: n.role}
	}
	return out, nil
}

type devNode struct{ name, role string }

// devNodes validates the requested names up front: signers and drivers share one directory, so
// a name used twice would make two nodes share one identity.
func devNodes(signers, drivers []string) ([]devNode, error) {
	seen := map[string]string{DevServerName: RoleServer}
	var nodes []devNode
	add := func(names []string, role string) error {
		for _, name := range names {
			if err := ValidateName(name); err != nil {
				return err
			}
			if reservedName(name) {
				return fmt.Errorf("%w %q: reserved for the CA's files", ErrInvalidName, name)
			}
			if prev, ok := seen[name]; ok {
				return fmt.Errorf("%w %q: used by a %s and a %s", ErrInvalidName, name, prev, role)
			}
			seen[name] = role
			nodes = append(nodes, devNode{name: name, role: role})
		}
		return nil
	}
	if err := add(signers, RoleSigner); err != nil {
		return nil, err
	}
	if err := add(drivers, RoleDriver); err != nil {
		return nil, err
	}
	return nodes, nil
}

func caCertPath(dir string) string {
	p, _ := caPaths(dir)
	return p
}

func ensureDevCA(dir string) (*ca, error) {
	certPath, keyPath := caPaths(dir)
	switch present, err := pairPresence(certPath, keyPath); {
	case err != nil:
		return nil, err
	case present == pairMissing:
		if err := InitCA(dir, devCAName, devCAValidity); err != nil {
			return nil, err
		}
	case present == pairPartial:
		return nil, fmt.Errorf("pki: only one of %s and %s exists; delete the folder %s to start a new dev PKI", certPath, keyPath, dir)
	}
	return loadCA(dir)
}

func ensureNode(dir string, roots *x509.CertPool, name, role string) (certPath, keyPath string, err error) {
	certPath, keyPath = nodePaths(dir, name)
	present, err := pairPresence(certPath, keyPath)
	if err != nil {
		return "", "", err
	}
	switch present {
	case pairMissing:
		var hosts []string // servers get the loopback defaults; clients take none
		return Issue(dir, dir, name, role, hosts, devLeafValidity)
	case pairPartial:
		return "", "", fmt.Errorf("pki: only one of %s and %s exists; delete it to reissue %s", certPath, keyPath, name)
	}
	if err := checkNode(roots, certPath, keyPath, name, role); err != nil {
		return "", "", fmt.Errorf("%w; delete %s and %s to reissue it", err, certPath, keyPath)
	}
	return certPath, keyPath, nil
}

// checkNode verifies an existing node pair as the peer would, so that a reused file fails here
// with a clear message instead of in a handshake later.
func checkNode(roots *x509.CertPool, certPath, keyPath, name, role string) error {
	pair, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		return err
	}
	leaf := pair.Leaf
	if leaf == nil { // tls.LoadX509KeyPair fills Leaf since Go 1.23; parse when it did not
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("pki: parse %s: %w", certPath, err)
		}
	}
	usage := x509.ExtKeyUsageClientAuth
	if role == RoleServer {
		usage = x509.ExtKeyUsageServerAuth
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("pki: %s does not verify against the dev CA: %w", certPath, err)
	}
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", certPath, err)
	}
	if id.Name != name || id.Role != role {
		return fmt.Errorf("%w: %s is %s, want %s/%s", ErrInvalidIdentity, certPath, id, role, name)
	}
	return nil
}

type presence int

const (
	pairMissing presence = iota
	pairPartial
	pairPresent
)

func pairPresence(a, b string) (presence, error) {
	n := 0
	for _, p := range []string{a, b} {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, fs.ErrNotExist):
			return 0, fmt.Errorf("pki: check %s: %w", p, err)
		}
	}
	return presence(n), nil
}
