package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sigil-wallet/sigil/server/ceremony"

	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/internal/reqsig"
	"github.com/sigil-wallet/sigil/server/api"
	"github.com/sigil-wallet/sigil/server/store"
)

// Config is everything `sigil server` needs. Zero values take the defaults
// documented on each field (see Defaults); Validate names the flag at fault.
type Config struct {
	// APIAddr is where applications call WalletService (flag --api-addr).
	APIAddr string
	// APITLSCert and APITLSKey switch the API port from h2c to TLS.
	APITLSCert, APITLSKey string
	// NodeAddr is the mTLS port for signers and drivers (--node-addr).
	NodeAddr string
	// NodeTLSCert and NodeTLSKey are the server's certificate on the node
	// port; NodeClientCA the CA that signer and driver certificates must
	// chain to.
	NodeTLSCert, NodeTLSKey, NodeClientCA string
	// NodeDenyList is a file of node certificates to refuse (serial
	// numbers or SHA-256 fingerprints, see pki.DenyList), re-read when it
	// changes: a stolen signer or driver certificate is shut out without a
	// new CA or a restart.
	NodeDenyList string
	// MetricsAddr serves Prometheus metrics; empty disables them.
	MetricsAddr string
	// DataDir holds the SQLite database when DatabaseURL is empty.
	DataDir string
	// DatabaseURL selects PostgreSQL (postgres://...).
	DatabaseURL string
	// CORSOrigins are the browser origins allowed to call the API port.
	CORSOrigins []string
	// MPCSigners names the n signers of the MPC group; empty disables MPC.
	MPCSigners []string
	// MPCThreshold is t: how many signers must sign.
	MPCThreshold int
	// HSM enables the HSM backend (wallets served by HSM drivers).
	HSM bool
	// DefaultBackend is used when a request does not name one: "mpc" or
	// "hsm"; empty picks mpc when configured, else hsm.
	DefaultBackend string
	// MaxRequestBytes bounds an API request body (default 1 MiB).
	MaxRequestBytes int
	// KeygenTimeout bounds an MPC key generation once started, and
	// separately its wait for every signer to be online (default 5 min);
	// time queued behind other ceremonies counts for neither.
	KeygenTimeout time.Duration
	// SignTimeout bounds one attempt of an MPC signature (default 60 s).
	SignTimeout time.Duration
	// HSMLease is how long a driver holds an HSM job without renewing
	// (default 30 s): a dead driver's jobs go back to the queue after it.
	HSMLease time.Duration
	// HSMMaxAttempts bounds the attempts of a failing HSM job (default 5).
	HSMMaxAttempts int
	// HSMMaxLease caps the life of a driver's lease on a job, renewals
	// included (default jobs.DefaultMaxLease).
	HSMMaxLease time.Duration
	// HSMAttestationKeys are PEM files of the HSM attestation public keys
	// to pin (`sigil hsm attestation-key` prints one per HSM; a file may
	// hold several). With --hsm, a key generation result must be attested
	// by one of them.
	HSMAttestationKeys []string
	// HSMAllowUnattested accepts HSM keys without an attestation: for
	// development only, since a stolen driver certificate then plants keys.
	HSMAllowUnattested bool
	// MPCWalletRate bounds, per API token, the MPC wallets CreateWallet
	// starts (key generations); the zero Rate is no limit. `sigil server`
	// defaults it to api.DefaultMPCWalletRate.
	MPCWalletRate api.Rate
	// QuorumWait is how long a signature waits for t MPC signers to be
	// online before it fails (default 10 s).
	QuorumWait time.Duration
	// PresignPool is how many CMP presignatures each active MPC wallet
	// keeps ready, made in the background when the signers are idle, so a
	// signature needs one round (0 turns pools off).
	PresignPool int
	// PresignPoolTotal bounds the ready presignatures across all wallets
	// (default DefaultPresignPoolTotal).
	PresignPoolTotal int
	// KeyPool is how many MPC keys are kept generated ahead (by all the
	// --mpc-signers), unassigned, so CreateWallet makes an MPC wallet
	// active at once (0: none).
	KeyPool int
	// ReplicaName names this replica in ceremony leases and logs; a
	// random suffix is added per process, so a restarted replica is a new
	// lease owner (default: host name and pid).
	ReplicaName string
	// MaxConcurrentCeremonies bounds the MPC ceremonies one signer runs at
	// once (default DefaultMaxConcurrentCeremonies); the others queue.
	MaxConcurrentCeremonies int
	// ShutdownTimeout bounds the graceful shutdown (default 15 s).
	ShutdownTimeout time.Duration
	// TrustedRequestKeysFile lists the request keys the coordinator
	// accepts (--trusted-request-keys): a signed request by another key is
	// refused early. Signers and drivers check with their own lists.
	TrustedRequestKeysFile string
	// RequireSignedRequests refuses unsigned CreateSignature requests at
	// the API (--require-signed-requests).
	RequireSignedRequests bool
	// RequestMaxAge bounds the age of a signed request (default
	// reqsig.DefaultMaxAge).
	RequestMaxAge time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultAPIAddr         = "127.0.0.1:8080"
	DefaultNodeAddr        = "127.0.0.1:8443"
	DefaultMetricsAddr     = "127.0.0.1:9464"
	DefaultDataDir         = "./sigil-data"
	DefaultMaxRequestBytes = 1 << 20
	// DefaultKeyPool is the MPC keys kept generated ahead: none.
	DefaultKeyPool = 0
	// DefaultPresignPool is the presignatures kept per MPC wallet: off.
	DefaultPresignPool = 0
	// DefaultPresignPoolTotal bounds the presignatures of all wallets.
	DefaultPresignPoolTotal = ceremony.DefaultPresignPoolTotal
	// nodeMaxRequestBytes bounds node-port requests: a CMP key generation
	// message for a large group, sealed, stays well under it.
	nodeMaxRequestBytes = 64 << 20
)

// DefaultMaxConcurrentCeremonies is the ceremonies one MPC signer runs at
// once: one per CPU of this machine, at least 2.
var DefaultMaxConcurrentCeremonies = ceremony.DefaultMaxConcurrent

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if c.NodeAddr == "" {
		c.NodeAddr = DefaultNodeAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.KeygenTimeout == 0 {
		c.KeygenTimeout = 5 * time.Minute
	}
	if c.SignTimeout == 0 {
		c.SignTimeout = 60 * time.Second
	}
	if c.PresignPoolTotal == 0 {
		c.PresignPoolTotal = DefaultPresignPoolTotal
	}
	if c.MaxConcurrentCeremonies == 0 {
		c.MaxConcurrentCeremonies = DefaultMaxConcurrentCeremonies
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RequestMaxAge == 0 {
		c.RequestMaxAge = reqsig.DefaultMaxAge
	}
}

// requestPolicy loads the coordinator's rule for signed requests.
func (c *Config) requestPolicy() (reqsig.Policy, error) {
	p := reqsig.Policy{Require: c.RequireSignedRequests, MaxAge: c.RequestMaxAge}
	if c.TrustedRequestKeysFile != "" {
		t, err := reqsig.LoadTrusted(c.TrustedRequestKeysFile)
		if err != nil {
			return p, fmt.Errorf("--trusted-request-keys: %w", err)
		}
		p.Trusted = t
	}
	return p, nil
}

// Validate checks the configuration and names the flag at fault.
func (c *Config) Validate() error {
	var errs []error
	for flag, addr := range map[string]string{"--api-addr": c.APIAddr, "--node-addr": c.NodeAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", flag, addr))
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-addr %q: want host:port, or empty to disable", c.MetricsAddr))
		}
	}
	if (c.APITLSCert == "") != (c.APITLSKey == "") {
		errs = append(errs, errors.New("--api-tls-cert and --api-tls-key go together"))
	}
	if c.NodeTLSCert == "" || c.NodeTLSKey == "" || c.NodeClientCA == "" {
		errs = append(errs, errors.New("the node port needs --node-tls-cert, --node-tls-key and --node-client-ca (make them with `sigil pki init` and `sigil pki issue --role server`)"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("--database-url: only postgres:// URLs are supported; leave it empty for SQLite in --data-dir"))
	}
	if c.MaxConcurrentCeremonies < 0 {
		errs = append(errs, fmt.Errorf("--max-concurrent-ceremonies %d: want 1 or more", c.MaxConcurrentCeremonies))
	}
	if c.KeyPool < 0 {
		errs = append(errs, fmt.Errorf("--key-pool %d: want 0 or more", c.KeyPool))
	}
	if c.PresignPool < 0 || c.PresignPoolTotal < 0 {
		errs = append(errs, fmt.Errorf("--presign-pool %d, --presign-pool-total %d: want 0 or more", c.PresignPool, c.PresignPoolTotal))
	}
	for _, o := range c.CORSOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			errs = append(errs, fmt.Errorf("--cors-origin %q: want an origin like https://app.example.com, or *", o))
		}
	}
	if len(c.MPCSigners) > 0 {
		seen := map[string]bool{}
		for _, s := range c.MPCSigners {
			if err := pki.ValidateName(s); err != nil {
				errs = append(errs, fmt.Errorf("--mpc-signers: %w", err))
			}
			if seen[s] {
				errs = append(errs, fmt.Errorf("--mpc-signers: %q is listed twice", s))
			}
			seen[s] = true
		}
		if c.MPCThreshold < 1 || c.MPCThreshold > len(c.MPCSigners) {
			errs = append(errs, fmt.Errorf("--mpc-threshold %d: want 1 to %d (the number of --mpc-signers)", c.MPCThreshold, len(c.MPCSigners)))
		}
		if c.MPCThreshold == 1 && len(c.MPCSigners) > 1 {
			// CMP needs at least two parties to sign; t=1 would mean one
			// signer holds enough to sign alone.
			errs = append(errs, errors.New("--mpc-threshold 1: a threshold of 1 lets any single signer sign; use 2 or more"))
		}
	}
	switch c.DefaultBackend {
	case "":
	case string(store.BackendMPC):
		if len(c.MPCSigners) == 0 {
			errs = append(errs, errors.New("--default-backend mpc needs --mpc-signers"))
		}
	case string(store.BackendHSM):
		if !c.HSM {
			errs = append(errs, errors.New("--default-backend hsm needs --hsm"))
		}
	default:
		errs = append(errs, fmt.Errorf("--default-backend %q: want mpc or hsm", c.DefaultBackend))
	}
	if c.HSM && len(c.HSMAttestationKeys) == 0 && !c.HSMAllowUnattested {
		errs = append(errs, errors.New("--hsm needs --hsm-attestation-key: the PEM public key of each HSM's attestation key "+
			"(`sigil hsm init-attestation-key`, then `sigil hsm attestation-key`), so that only keys an HSM made are accepted; "+
			"--hsm-allow-unattested-keys turns the check off for development"))
	}
	if c.HSMMaxLease != 0 && c.HSMMaxLease < c.HSMLease {
		errs = append(errs, fmt.Errorf("--hsm-max-lease %s: want at least --hsm-lease (%s)", c.HSMMaxLease, c.HSMLease))
	}
	if c.MaxRequestBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-request-bytes %d: want at least 1024", c.MaxRequestBytes))
	}
	return errors.Join(errs...)
}

func (c *Config) defaultBackend() store.Backend {
	switch {
	case c.DefaultBackend != "":
		return store.Backend(c.DefaultBackend)
	case len(c.MPCSigners) > 0:
		return store.BackendMPC
	case c.HSM:
		return store.BackendHSM
	default:
		return ""
	}
}

func (c *Config) sqlitePath() string { return filepath.Join(c.DataDir, "sigil.db") }

// corsAllows reports whether origin may call the API port from a browser.
func (c *Config) corsAllows(origin string) bool {
	return slices.Contains(c.CORSOrigins, "*") || slices.Contains(c.CORSOrigins, origin)
}

// isLoopback reports whether addr (host:port) is reachable from this
// machine only: a loopback IP or "localhost". An empty host, 0.0.0.0 and
// any other name listen beyond it.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
