package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadCertPool returns a pool holding every certificate of the PEM file at path, normally the
// operator CA's ca.pem.
func LoadCertPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA file %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// LoadKeyPair loads a node's certificate and private key, failing when they do not match.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: load key pair %s, %s: %w", certPath, keyPath, err)
	}
	return pair, nil
}

// ServerTLSConfig is the TLS configuration of the coordinator's node port: TLS 1.3 only, and
// every client must present a certificate that chains to the CA in clientCAPath, is valid for
// client authentication, and carries a signer or driver identity. Checking the identity during
// the handshake means a malformed or server certificate is turned away before any handler runs;
// handlers still decide what each identity may do, with [IdentityFromTLS].
func ServerTLSConfig(certPath, keyPath, clientCAPath string) (*tls.Config, error) {
	pair, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	pool, err := LoadCertPool(clientCAPath)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// RequireAndVerifyClientCert verifies the chain against ClientCAs with
		// ExtKeyUsageClientAuth, so a server certificate cannot be used to log in.
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := IdentityFromTLS(&cs)
			if err != nil {
				return err
			}
			if id.Role == RoleServer {
				return fmt.Errorf("%w: %q is a %s, not a node", ErrInvalidIdentity, id.Name, id.Role)
			}
			return nil
		},
	}, nil
}

// ClientTLSConfig is the TLS configuration a signer or driver dials the node port with: TLS 1.3
// only, its own certificate, and a server certificate that chains to the CA in serverCAPath
// and carries the server role. serverName is the name checked against the server's SANs; it
// may be empty when the dialer fills it in from the address (net/http and tls.Dial do).
func ClientTLSConfig(certPath, keyPath, serverCAPath, serverName string) (*tls.Config, error) {
	pair, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	pool, err := LoadCertPool(serverCAPath)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   serverName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := IdentityFromTLS(&cs)
			if err != nil {
				return err
			}
			if id.Role != RoleServer {
				return fmt.Errorf("%w: peer %q is a %s, not a server", ErrInvalidIdentity, id.Name, id.Role)
			}
			return nil
		},
	}, nil
}
