package main

import (
	"flag"
	"time"

	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/api"
	"github.com/sigil-wallet/sigil/server/jobs"
)

// serverFlags declares the coordinator's flags on fs, filling cfg.
func serverFlags(fs *flag.FlagSet, cfg *server.Config, cors, mpcSigners, attestKeys *listFlag) {
	fs.StringVar(&cfg.APIAddr, "api-addr", server.DefaultAPIAddr, "address of the API port (WalletService over Connect, gRPC and gRPC-Web; reflection; health)")
	fs.StringVar(&cfg.APITLSCert, "api-tls-cert", "", "PEM certificate for TLS on the API port; without it the API port speaks h2c (plaintext HTTP/2 and HTTP/1.1)")
	fs.StringVar(&cfg.APITLSKey, "api-tls-key", "", "PEM private key for --api-tls-cert")
	fs.StringVar(&cfg.NodeAddr, "node-addr", server.DefaultNodeAddr, "address of the node port, where signers and HSM drivers connect with mTLS")
	fs.StringVar(&cfg.NodeTLSCert, "node-tls-cert", "", "PEM server certificate of the node port (\"sigil pki issue --role server\")")
	fs.StringVar(&cfg.NodeTLSKey, "node-tls-key", "", "PEM private key for --node-tls-cert")
	fs.StringVar(&cfg.NodeClientCA, "node-client-ca", "", "PEM CA certificate that signer and driver certificates must chain to (\"sigil pki init\")")
	fs.StringVar(&cfg.NodeDenyList, "node-deny-list", "", "file of signer/driver certificates to refuse, one per line: serial number (serial:HEX) or SHA-256 fingerprint (sha256:HEX); re-read on change, no restart, open streams of a newly denied certificate are cut off")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", server.DefaultMetricsAddr, "address serving Prometheus metrics at /metrics; empty disables")
	fs.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "folder of the SQLite database (sigil.db), used when --database-url is empty")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL (postgres://user@host:5432/db), for several coordinator replicas; empty uses SQLite in --data-dir")
	fs.Var(cors, "cors-origin", "browser origin allowed to call the API port, e.g. https://app.example.com (repeat or comma-separate; * allows any)")
	fs.Var(mpcSigners, "mpc-signers", "names of the n signers of the MPC group, comma-separated (their certificate names); empty disables MPC")
	fs.IntVar(&cfg.MPCThreshold, "mpc-threshold", 2, "t: how many of the --mpc-signers must take part in a signature")
	fs.BoolVar(&cfg.HSM, "hsm", false, "serve HSM drivers: wallets with backend hsm are queued for \"sigil hsm-driver\"")
	fs.StringVar(&cfg.DefaultBackend, "default-backend", "", "backend for requests that name none: mpc or hsm (default: mpc if --mpc-signers, else hsm if --hsm)")
	fs.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "largest API request body accepted; larger requests are refused with RESOURCE_EXHAUSTED before being read")
	fs.DurationVar(&cfg.KeygenTimeout, "keygen-timeout", 5*time.Minute, "how long an MPC key generation may take once started, and separately how long it waits for every signer to be online, before the wallet fails (time queued behind other ceremonies counts for neither)")
	fs.DurationVar(&cfg.SignTimeout, "sign-timeout", 60*time.Second, "how long one MPC signing attempt may take before it is retried with another quorum")
	fs.DurationVar(&cfg.HSMLease, "hsm-lease", 30*time.Second, "how long an HSM driver holds a job without renewing; a dead driver's jobs return to the queue after it")
	fs.IntVar(&cfg.HSMMaxAttempts, "hsm-max-attempts", 5, "attempts of a failing HSM job before its wallet or signature fails")
	fs.DurationVar(&cfg.HSMMaxLease, "hsm-max-lease", jobs.DefaultMaxLease, "longest an HSM driver may hold one job, renewals included; then its lease lapses and the job returns to the queue")
	fs.Var(attestKeys, "hsm-attestation-key", "PEM file of an HSM attestation public key to pin (\"sigil hsm attestation-key\"; repeat, or several keys in one file); required with --hsm: HSM key generations not attested by a pinned key are refused")
	fs.BoolVar(&cfg.HSMAllowUnattested, "hsm-allow-unattested-keys", false, "DEVELOPMENT ONLY: accept HSM keys without an attestation (a stolen driver certificate can then plant wallet keys)")
	fs.StringVar(&cfg.ReplicaName, "replica-name", "",
		"names this replica among those sharing the database, in ceremony leases and logs; a random suffix is added per process (default: host name and pid)")
	cfg.MPCWalletRate = api.DefaultMPCWalletRate
	fs.Var(&cfg.MPCWalletRate, "mpc-wallet-rate", "MPC wallets (key generations) one API token may ask for: N/duration, in bursts of up to N (e.g. 4/1m, 100/1h), or off; more are refused with RESOURCE_EXHAUSTED saying when to retry. Each replica counts on its own")
	fs.DurationVar(&cfg.QuorumWait, "quorum-wait", 10*time.Second, "how long a signature waits for t MPC signers to be online before it fails")
	presignFlags(fs, cfg)
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "grace period for in-flight requests on SIGTERM/SIGINT")
	requestFlags(fs, &cfg.TrustedRequestKeysFile, &cfg.RequireSignedRequests, &cfg.RequestMaxAge, "the coordinator (an early check; signers and drivers decide with their own lists)")
}

func serverCommand() *command {
	return &command{
		name:    "server",
		summary: "run the coordinator: the API port for applications and the node port for signers and drivers",
		usage: `Runs the coordinator. Applications call WalletService on the API port with
bearer tokens (make one with "sigil token create"). MPC signers and HSM drivers
dial the node port with mTLS certificates of the node CA ("sigil pki").
Stops gracefully on SIGTERM or SIGINT.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var cfg server.Config
			var cors, signers, attestKeys listFlag
			serverFlags(fs, &cfg, &cors, &signers, &attestKeys)
			env.addLogFlags(fs)
			return func() error {
				logger, err := env.logger()
				if err != nil {
					return err
				}
				cfg.CORSOrigins, cfg.MPCSigners, cfg.HSMAttestationKeys, cfg.Logger = cors, signers, attestKeys, logger
				srv, err := server.New(env.ctx, cfg)
				if err != nil {
					return err
				}
				defer srv.Close()
				logger.Info("sigil server ready", "api", srv.APIURL(), "node", srv.Addr("node"))
				return srv.Serve(env.ctx)
			}
		},
	}
}

// presignFlags are the pool flags of sigil server and sigil dev.
func presignFlags(fs *flag.FlagSet, cfg *server.Config) {
	fs.IntVar(&cfg.KeyPool, "key-pool", server.DefaultKeyPool,
		"MPC keys kept generated ahead by all the signers, unassigned, so a new MPC wallet is active at once; 0 turns the key pool off")
	fs.IntVar(&cfg.PresignPool, "presign-pool", server.DefaultPresignPool,
		"CMP presignatures kept ready per MPC wallet, made when the signers are idle, so a signature needs one round instead of the whole protocol; 0 turns pools off")
	fs.IntVar(&cfg.PresignPoolTotal, "presign-pool-total", server.DefaultPresignPoolTotal,
		"most presignatures kept across all MPC wallets (wallets with the fewest are filled first)")
	fs.IntVar(&cfg.MaxConcurrentCeremonies, "max-concurrent-ceremonies", server.DefaultMaxConcurrentCeremonies,
		"most MPC ceremonies one signer runs at once, across all replicas; the others queue, signatures ahead of key generations, "+
			"and time queued does not count against --keygen-timeout or --sign-timeout; the default is one per CPU of this machine, at least 2")
}
