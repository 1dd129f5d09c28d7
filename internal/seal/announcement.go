package seal

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"time"
)

// Announcement layout (version 1, big-endian):
//
//	"SA" 0x01                  magic and version
//	u8  len | name             signer name, 1..MaxNameLen
//	u16 len | hpke public key  X25519, exactly 32 bytes
//	i64 issued-at              Unix seconds
//	i64 expires-at             Unix seconds
//	u8  count                  certificates, 1..maxChainLen, leaf first
//	  u16 len | DER            each 1..maxCertLen
//	u8  len | signature        ASN.1 ECDSA P-256 by the leaf key over
//	                           SHA-256(domainAnnouncement || 0 || all above)
const (
	// MaxNameLen matches the MPC library's party-id limit (32 bytes), since
	// signer names double as party ids.
	MaxNameLen = 32
	// AnnouncementTTL is how long a freshly signed announcement is valid.
	// Short, because the relay could otherwise keep serving an old one.
	AnnouncementTTL = 24 * time.Hour
	// MaxClockSkew tolerates peers whose clocks run ahead of ours.
	MaxClockSkew = 5 * time.Minute

	maxChainLen  = 4
	maxCertLen   = 8 << 10
	maxSigLen    = 72 // DER ECDSA P-256: 2 + 2*(2+33)
	minSigLen    = 8
	hpkeKeyLen   = 32
	maxTTLAccept = 7 * 24 * time.Hour // refuse announcements claiming longer lifetimes

	domainAnnouncement = "sigil/seal/v1/announcement"
)

var magicAnnouncement = []byte{'S', 'A', 1}

type announcement struct {
	name      string
	hpkePK    []byte
	issuedAt  time.Time
	expiresAt time.Time
	chain     [][]byte
	sig       []byte
	raw       []byte // full encoding, signature included
	body      []byte // raw without the signature field
}

func (a *announcement) encodeBody() []byte {
	b := append([]byte(nil), magicAnnouncement...)
	b = put8(b, []byte(a.name))
	b = put16(b, a.hpkePK)
	b = binary.BigEndian.AppendUint64(b, uint64(a.issuedAt.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(a.expiresAt.Unix()))
	b = append(b, byte(len(a.chain)))
	for _, der := range a.chain {
		b = put16(b, der)
	}
	return b
}

func decodeAnnouncement(b []byte) (*announcement, error) {
	r := reader{b: b}
	if string(r.take(len(magicAnnouncement))) != string(magicAnnouncement) {
		return nil, fmt.Errorf("%w: not a version 1 announcement", ErrMalformed)
	}
	a := &announcement{}
	a.name = string(r.bytes8(1, MaxNameLen))
	a.hpkePK = r.bytes16(hpkeKeyLen, hpkeKeyLen)
	a.issuedAt = time.Unix(int64(r.u64()), 0)
	a.expiresAt = time.Unix(int64(r.u64()), 0)
	n := int(r.u8())
	if n < 1 || n > maxChainLen {
		return nil, fmt.Errorf("%w: %d certificates", ErrMalformed, n)
	}
	for range n {
		a.chain = append(a.chain, r.bytes16(1, maxCertLen))
	}
	bodyLen := len(b) - len(r.b)
	a.sig = r.bytes8(minSigLen, maxSigLen)
	if !r.done() {
		return nil, fmt.Errorf("%w: bad announcement encoding", ErrMalformed)
	}
	a.body = b[:bodyLen:bodyLen]
	a.raw = b
	return a, nil
}

// VerifyAnnouncement checks a peer's announcement: strict decoding, a
// certificate chain to roots valid now for client authentication, a signer
// certificate (SignerOU, ECDSA P-256) whose CommonName is the announced
// name, the validity period, and the signature. The returned Peer is what a
// Session seals to and verifies against.
func VerifyAnnouncement(b []byte, roots *x509.CertPool, now time.Time) (*Peer, error) {
	a, err := decodeAnnouncement(b)
	if err != nil {
		return nil, err
	}
	if !validName(a.name) {
		return nil, fmt.Errorf("%w: invalid signer name", ErrMalformed)
	}
	if !a.expiresAt.After(a.issuedAt) || a.expiresAt.Sub(a.issuedAt) > maxTTLAccept {
		return nil, fmt.Errorf("%w: validity period %s to %s", ErrExpired, a.issuedAt, a.expiresAt)
	}
	if now.Add(MaxClockSkew).Before(a.issuedAt) || !now.Before(a.expiresAt) {
		return nil, fmt.Errorf("%w: valid %s to %s, now %s", ErrExpired, a.issuedAt.UTC(), a.expiresAt.UTC(), now.UTC())
	}
	certs := make([]*x509.Certificate, len(a.chain))
	for i, der := range a.chain {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrMalformed, i, err)
		}
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if roots == nil {
		// A nil pool would make x509 fall back to the system roots, which
		// must never vouch for a signer.
		return nil, fmt.Errorf("%w: no signer CA configured", ErrUntrusted)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	pub, err := signerKey(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if leaf.Subject.CommonName != a.name {
		return nil, fmt.Errorf("%w: announcement for %q carries certificate of %q", ErrUntrusted, a.name, leaf.Subject.CommonName)
	}
	if !verify(pub, domainAnnouncement, a.body, a.sig) {
		return nil, ErrBadSignature
	}
	hpk, err := suiteKEM.NewPublicKey(a.hpkePK)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE key: %v", ErrMalformed, err)
	}
	return &Peer{
		Name:        a.name,
		Certificate: leaf,
		IssuedAt:    a.issuedAt,
		ExpiresAt:   a.expiresAt,
		sigKey:      pub,
		hpke:        hpk,
	}, nil
}
