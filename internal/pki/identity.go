package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// Identity is who a peer on the node port is, as its certificate says.
type Identity struct {
	Name string // the certificate's Common Name
	Role string // RoleSigner, RoleDriver or RoleServer
}

// String formats the identity as role/name, the form logs use.
func (id Identity) String() string { return id.Role + "/" + id.Name }

// IdentityFromCert reads the identity of a certificate: its Common Name must be a valid name and
// it must carry exactly one Organizational Unit, a known role. It does not verify the
// certificate; call it only on a verified chain.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrInvalidIdentity)
	}
	if err := ValidateName(cert.Subject.CommonName); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	ous := cert.Subject.OrganizationalUnit
	// Exactly one OU: with several, which role applies would depend on who reads the list.
	if len(ous) != 1 {
		return Identity{}, fmt.Errorf("%w: %q has %d organizational units, want exactly one role", ErrInvalidIdentity, cert.Subject.CommonName, len(ous))
	}
	if !ValidRole(ous[0]) {
		return Identity{}, fmt.Errorf("%w: %q has unknown role %q", ErrInvalidIdentity, cert.Subject.CommonName, ous[0])
	}
	return Identity{Name: cert.Subject.CommonName, Role: ous[0]}, nil
}

// IdentityFromTLS reads the identity of the peer of a TLS connection from the leaf of its first
// verified chain. It fails when the handshake verified no chain, so it can never trust a
// certificate the peer merely presented.
func IdentityFromTLS(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, fmt.Errorf("%w: no TLS connection state (is the port plain HTTP?)", ErrUnverified)
	}
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Identity{}, ErrUnverified
	}
	return IdentityFromCert(cs.VerifiedChains[0][0])
}
