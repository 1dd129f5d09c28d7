package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"
)

// defaultServerHosts are the SANs of a server certificate issued without explicit hosts: enough
// for a coordinator reached over loopback, as in `sigil dev`.
func defaultServerHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

// reservedName reports names whose files would collide with the CA's in a shared directory.
func reservedName(name string) bool { return name == "ca" || name == "ca-key" }

// Issue signs a new node certificate with the CA in caDir and writes outDir/<name>.pem (0644)
// and outDir/<name>-key.pem (0600), refusing to overwrite either. outDir is created with mode
// 0700 when missing.
//
// The certificate file holds the leaf only, not the CA: every peer is configured with the CA
// file anyway, and a single-level PKI has no intermediates to send.
//
// Signer and driver certificates are client certificates (ExtKeyUsageClientAuth). Server
// certificates are server certificates (ExtKeyUsageServerAuth) whose SANs are hosts, each taken
// as an IP address when it parses as one and as a DNS name otherwise; without hosts they cover
// localhost, 127.0.0.1 and ::1. The validity is cut short at the CA's own expiry, since a leaf
// cannot verify beyond it.
func Issue(caDir, outDir, name, role string, hosts []string, validity time.Duration) (certPath, keyPath string, err error) {
	if err := ValidateName(name); err != nil {
		return "", "", err
	}
	if reservedName(name) {
		return "", "", fmt.Errorf("%w %q: reserved for the CA's files", ErrInvalidName, name)
	}
	if !ValidRole(role) {
		return "", "", fmt.Errorf("%w %q: want %s, %s or %s", ErrInvalidRole, role, RoleSigner, RoleDriver, RoleServer)
	}
	if validity <= 0 {
		return "", "", fmt.Errorf("pki: validity must be positive, got %s", validity)
	}
	if role != RoleServer && len(hosts) > 0 {
		return "", "", fmt.Errorf("pki: hosts are only meaningful for %s certificates, not %s", RoleServer, role)
	}
	authority, err := loadCA(caDir)
	if err != nil {
		return "", "", err
	}
	if err := ensureDir(outDir); err != nil {
		return "", "", err
	}
	certPath, keyPath = nodePaths(outDir, name)
	if err := refuseExisting(certPath, keyPath); err != nil {
		return "", "", err
	}

	tmpl, err := leafTemplate(authority, name, role, hosts, validity)
	if err != nil {
		return "", "", err
	}
	key, err := newKey()
	if err != nil {
		return "", "", err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, authority.cert, &key.PublicKey, authority.key)
	if err != nil {
		return "", "", fmt.Errorf("pki: sign certificate for %s: %w", name, err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return "", "", err
	}
	if err := writeNew(keyPath, keyPEM, keyFileMode); err != nil {
		return "", "", err
	}
	if err := writeNew(certPath, encodeCert(der), certFileMode); err != nil {
		return "", "", errors.Join(err, removeQuietly(keyPath))
	}
	return certPath, keyPath, nil
}

func nodePaths(dir, name string) (certPath, keyPath string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
}

func leafTemplate(authority *ca, name, role string, hosts []string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(authority.cert.NotAfter) {
		notAfter = authority.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("pki: the CA expired on %s; create a new CA", authority.cert.NotAfter.Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, OrganizationalUnit: []string{role}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		// ECDSA keys only sign during the handshake; KeyEncipherment is an RSA concept.
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if role != RoleServer {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		return tmpl, nil
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if len(hosts) == 0 {
		hosts = defaultServerHosts()
	}
	for _, h := range hosts {
		if h == "" {
			return nil, errors.New("pki: empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// removeQuietly removes a file written moments ago as part of an operation that failed later.
func removeQuietly(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki: clean up %s: %w", path, err)
	}
	return nil
}
