package seal

// Test-only PKI. It lives in package seal (not seal_test) so that both the
// black-box tests and the internal ones can use it; its exported names exist
// only in test builds.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// TestCA is a throw-away certificate authority.
type TestCA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewTestCA makes a self-signed P-256 CA valid for a day around now.
func NewTestCA(t testing.TB, name string) *TestCA {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &TestCA{Cert: cert, key: key}
}

// Pool returns a pool holding only this CA.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// CertOptions adjusts an issued certificate.
type CertOptions struct {
	OUs      []string // default: {"signer"}
	EKU      []x509.ExtKeyUsage
	NotAfter time.Time
	Key      any // default: fresh P-256 key
}

// Issue makes a signer client certificate for cn.
func (ca *TestCA) Issue(t testing.TB, cn string, opt CertOptions) tls.Certificate {
	t.Helper()
	if opt.OUs == nil {
		opt.OUs = []string{SignerOU}
	}
	if opt.EKU == nil {
		opt.EKU = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if opt.NotAfter.IsZero() {
		opt.NotAfter = time.Now().Add(12 * time.Hour)
	}
	if opt.Key == nil {
		opt.Key = mustKey(t)
	}
	pub := opt.Key.(crypto.Signer).Public()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: opt.OUs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     opt.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  opt.EKU,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: opt.Key}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// NewIdentityWithClock is NewIdentity with a fake clock.
func NewIdentityWithClock(cert tls.Certificate, now func() time.Time) (*Identity, error) {
	return newIdentity(cert, now)
}

// ResignEnvelope replaces an envelope's signature with one by key, as a
// malicious peer holding its own valid certificate could.
func ResignEnvelope(t testing.TB, env []byte, key crypto.Signer) []byte {
	t.Helper()
	e, err := decodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign(key, domainEnvelope, e.signed)
	if err != nil {
		t.Fatal(err)
	}
	return put8(bytes.Clone(e.signed), sig)
}
