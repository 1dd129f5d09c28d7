package pki

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"
)

// InitCA creates a new operator CA in dir: the certificate dir/ca.pem (0644) and its private key
// dir/ca-key.pem (0600). dir is created with mode 0700 when missing. InitCA refuses to touch an
// existing CA: replacing it would orphan every node certificate it issued.
//
// The CA may sign only end-entity certificates (MaxPathLen 0): Sigil has no intermediate CAs, and
// forbidding them means a stolen node key can never mint identities.
func InitCA(dir, commonName string, validity time.Duration) error {
	if commonName == "" {
		return errors.New("pki: CA common name must not be empty")
	}
	if validity <= 0 {
		return fmt.Errorf("pki: CA validity must be positive, got %s", validity)
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	certPath, keyPath := caPaths(dir)
	if err := refuseExisting(certPath, keyPath); err != nil {
		return err
	}

	key, err := newKey()
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("pki: create CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	// Key first: a certificate without its key is useless, a key without a certificate is
	// merely unused, and writeNew removes what it could not finish.
	if err := writeNew(keyPath, keyPEM, keyFileMode); err != nil {
		return err
	}
	if err := writeNew(certPath, encodeCert(der), certFileMode); err != nil {
		return errors.Join(err, removeQuietly(keyPath))
	}
	return nil
}

// ca is a loaded CA able to sign.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// loadCA reads the CA of caDir and checks that its key matches its certificate, so that Issue
// fails loudly instead of producing certificates nobody can verify.
func loadCA(caDir string) (*ca, error) {
	certPath, keyPath := caPaths(caDir)
	cert, err := LoadCertificate(certPath)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", certPath)
	}
	key, err := loadECKey(keyPath)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("pki: %s does not match the key in %s", certPath, keyPath)
	}
	return &ca{cert: cert, key: key}, nil
}
