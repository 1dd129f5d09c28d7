package hsm

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultMasterKeyLabel = "sigil-master-key"
	// DefaultAttestationKeyLabel labels the attestation key pair.
	DefaultAttestationKeyLabel = "sigil-attestation-key"
	DefaultSessions            = 4
)

// Config says which module, token and master key a handle uses.
type Config struct {
	// ModulePath is the PKCS#11 shared library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	ModulePath string
	// TokenLabel selects the token; labels are matched after trimming the
	// space padding PKCS#11 puts in CK_TOKEN_INFO.
	TokenLabel string
	// PIN is the user (CKU_USER) PIN. It is never logged nor put in an error.
	// The handle keeps it in memory to log in again if the module drops all
	// sessions (and with them the login); a Go string cannot be zeroed.
	PIN string
	// MasterKeyLabel is the CKA_LABEL of the AES-256 master key.
	// Default DefaultMasterKeyLabel.
	MasterKeyLabel string
	// AttestationKeyLabel is the CKA_LABEL of the ECDSA P-256 attestation
	// key pair. Default DefaultAttestationKeyLabel.
	AttestationKeyLabel string
	// Sessions is the size of the session pool, i.e. how many operations run
	// in the HSM at once. Default DefaultSessions.
	Sessions int
	// ObserveCall, when set, is called after each PKCS#11 operation with op in
	// "generate", "wrap", "unwrap", "sign", "destroy", its duration and its
	// error. It lets the driver export metrics without this package importing
	// a metrics library. It must be fast and safe for concurrent use.
	ObserveCall func(op string, d time.Duration, err error)
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MasterKeyLabel == "" {
		c.MasterKeyLabel = DefaultMasterKeyLabel
	}
	if c.AttestationKeyLabel == "" {
		c.AttestationKeyLabel = DefaultAttestationKeyLabel
	}
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	return c
}

// Validate reports configuration mistakes before any module is loaded.
func (c Config) Validate() error {
	var errs []error
	if c.ModulePath == "" {
		errs = append(errs, errors.New("hsm: module path is required"))
	}
	if c.TokenLabel == "" {
		errs = append(errs, errors.New("hsm: token label is required"))
	}
	if c.PIN == "" {
		errs = append(errs, errors.New("hsm: PIN is required"))
	}
	if c.Sessions < 0 {
		errs = append(errs, fmt.Errorf("hsm: sessions must be positive, got %d", c.Sessions))
	}
	return errors.Join(errs...)
}
