package seal

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"
)

// SignerOU is the OrganizationalUnit the signer CA puts in every signer
// certificate. Requiring it keeps a certificate the same CA issued for some
// other role (a driver, an operator) from posing as a signer.
const SignerOU = "signer"

// The HPKE suite is fixed by the format version rather than negotiated:
// there is nothing to downgrade.
var (
	suiteKEM  = hpke.DHKEM(ecdh.X25519())
	suiteKDF  = hpke.HKDFSHA256()
	suiteAEAD = hpke.AES256GCM()
)

// Identity is this signer process's sealing identity: its certificate key
// for signing and an ephemeral HPKE key for receiving. The HPKE key lives
// only in memory, so envelopes sealed to a previous run of the process
// cannot be opened by anyone afterwards.
type Identity struct {
	name   string
	key    crypto.Signer
	pub    *ecdsa.PublicKey
	chain  [][]byte
	leaf   *x509.Certificate
	hpke   hpke.PrivateKey
	hpkePK []byte
	now    func() time.Time

	mu  sync.Mutex
	ann *announcement // last signed announcement, refreshed by Announcement
}

// NewIdentity builds an identity from the signer's mTLS client certificate.
// The certificate must hold an ECDSA P-256 key, a valid signer name as its
// CommonName and SignerOU among its OrganizationalUnits; the chain itself is
// checked by peers, not here.
func NewIdentity(cert tls.Certificate) (*Identity, error) {
	return newIdentity(cert, time.Now)
}

func newIdentity(cert tls.Certificate, now func() time.Time) (*Identity, error) {
	if len(cert.Certificate) == 0 || len(cert.Certificate) > maxChainLen {
		return nil, fmt.Errorf("%w: need 1 to %d certificates, got %d", ErrInvalidIdentity, maxChainLen, len(cert.Certificate))
	}
	for _, der := range cert.Certificate {
		if len(der) == 0 || len(der) > maxCertLen {
			return nil, fmt.Errorf("%w: certificate of %d bytes", ErrInvalidIdentity, len(der))
		}
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidIdentity, err)
		}
	}
	pub, err := signerKey(leaf)
	if err != nil {
		return nil, err
	}
	key, ok := cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key cannot sign", ErrInvalidIdentity)
	}
	if kp, ok := key.Public().(*ecdsa.PublicKey); !ok || !kp.Equal(pub) {
		return nil, fmt.Errorf("%w: private key does not match certificate", ErrInvalidIdentity)
	}
	sk, err := suiteKEM.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("seal: generate HPKE key: %w", err)
	}
	id := &Identity{
		name:   leaf.Subject.CommonName,
		key:    key,
		pub:    pub,
		chain:  slices.Clone(cert.Certificate),
		leaf:   leaf,
		hpke:   sk,
		hpkePK: sk.PublicKey().Bytes(),
		now:    now,
	}
	// Sign once now so that a key that cannot sign fails here, not later
	// inside Announcement, which has no error to return.
	ann, err := id.signAnnouncement(now())
	if err != nil {
		return nil, err
	}
	id.ann = ann
	return id, nil
}

// signerKey checks what every signer certificate must carry and returns its
// key. It serves both our own certificate and peers'.
func signerKey(leaf *x509.Certificate) (*ecdsa.PublicKey, error) {
	if !validName(leaf.Subject.CommonName) {
		return nil, fmt.Errorf("%w: CommonName %q is not a valid signer name", ErrInvalidIdentity, leaf.Subject.CommonName)
	}
	if !slices.Contains(leaf.Subject.OrganizationalUnit, SignerOU) {
		return nil, fmt.Errorf("%w: certificate OU lacks %q", ErrInvalidIdentity, SignerOU)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: certificate key is not ECDSA P-256", ErrInvalidIdentity)
	}
	return pub, nil
}

// Name is the signer name, the certificate's CommonName.
func (id *Identity) Name() string { return id.name }

// Announcement returns the signed announcement of this process's HPKE key,
// to be published through the coordinator. The same bytes are returned
// until half of their lifetime has passed; then they are re-signed with a
// fresh validity period (same HPKE key), so a long-running signer never
// hands out an expired announcement.
func (id *Identity) Announcement() []byte {
	id.mu.Lock()
	defer id.mu.Unlock()
	now := id.now()
	half := id.ann.expiresAt.Sub(id.ann.issuedAt) / 2
	if now.Before(id.ann.issuedAt.Add(half)) || now.After(id.leaf.NotAfter) {
		return slices.Clone(id.ann.raw)
	}
	if ann, err := id.signAnnouncement(now); err == nil {
		id.ann = ann
	}
	// On a signing failure the previous announcement stays valid until its
	// expiry; peers then report ErrExpired, which names the problem.
	return slices.Clone(id.ann.raw)
}

func (id *Identity) signAnnouncement(now time.Time) (*announcement, error) {
	issued := now.Truncate(time.Second)
	expires := issued.Add(AnnouncementTTL)
	if na := id.leaf.NotAfter.Truncate(time.Second); na.Before(expires) {
		expires = na
	}
	if !expires.After(issued) {
		return nil, fmt.Errorf("%w: certificate expired at %s", ErrInvalidIdentity, id.leaf.NotAfter)
	}
	a := &announcement{
		name:      id.name,
		hpkePK:    id.hpkePK,
		issuedAt:  issued,
		expiresAt: expires,
		chain:     id.chain,
	}
	body := a.encodeBody()
	sig, err := sign(id.key, domainAnnouncement, body)
	if err != nil {
		return nil, fmt.Errorf("%w: sign announcement: %v", ErrInvalidIdentity, err)
	}
	a.raw = put8(body, sig)
	return a, nil
}

// Peer is another signer whose announcement verified.
type Peer struct {
	// Name is the signer name (certificate CommonName).
	Name string
	// Certificate is the verified leaf certificate.
	Certificate *x509.Certificate
	// IssuedAt and ExpiresAt bound the announcement's validity.
	IssuedAt, ExpiresAt time.Time

	sigKey *ecdsa.PublicKey
	hpke   hpke.PublicKey
}
