package proctest

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sigil-wallet/sigil/hsm"
)

// Server is a running `sigil server` replica.
type Server struct {
	*Proc
	APIURL     string // http://127.0.0.1:port (h2c)
	NodeURL    string // https://127.0.0.1:port (mTLS)
	MetricsURL string // http://127.0.0.1:port/metrics
	DataDir    string
	DBURL      string
}

// ServerOptions configure a replica.
type ServerOptions struct {
	// DatabaseURL is the shared PostgreSQL database; empty uses SQLite in
	// the replica's own folder (one replica).
	DatabaseURL string
	HSM         bool
	// AttestationKeys is the PEM file of the HSM attestation keys the
	// replica pins (--hsm-attestation-key); see cluster.EnsureAttestationKeys.
	AttestationKeys string
	MPCSigners      []string
	Threshold       int
	// Args are further flags.
	Args []string
}

// StartServer starts a replica and waits until its health service says
// SERVING.
func (h *Harness) StartServer(name string, o ServerOptions) *Server {
	h.t.Helper()
	s := h.launchServer(name, o)
	s.Proc.WaitReady()
	return s
}

// StartServersAtOnce starts the replicas at the same moment (their
// migrations and start-up race on the shared database, as replicas
// deployed together do), then waits until each is SERVING.
func (h *Harness) StartServersAtOnce(names []string, o ServerOptions, args func(name string) []string) []*Server {
	h.t.Helper()
	var out []*Server
	for _, name := range names {
		oo := o
		oo.Args = append(append([]string(nil), o.Args...), args(name)...)
		out = append(out, h.launchServer(name, oo))
	}
	for _, s := range out {
		s.Proc.WaitReady()
	}
	return out
}

func (h *Harness) launchServer(name string, o ServerOptions) *Server {
	h.t.Helper()
	api, node, metrics := FreeAddr(h.t), FreeAddr(h.t), FreeAddr(h.t)
	s := &Server{APIURL: "http://" + api, NodeURL: "https://" + node, MetricsURL: "http://" + metrics + "/metrics",
		DataDir: filepath.Join(h.Dir, name), DBURL: o.DatabaseURL}
	args := []string{"server", "--api-addr", api, "--node-addr", node, "--metrics-addr", metrics,
		"--node-tls-cert", h.PKI.ServerCert, "--node-tls-key", h.PKI.ServerKey, "--node-client-ca", h.PKI.CAPath,
		"--data-dir", s.DataDir, "--log-level", "debug"}
	if o.DatabaseURL != "" {
		args = append(args, "--database-url", o.DatabaseURL)
	}
	if o.HSM {
		args = append(args, "--hsm", "--hsm-attestation-key", o.AttestationKeys)
	}
	if len(o.MPCSigners) > 0 {
		args = append(args, "--mpc-signers", strings.Join(o.MPCSigners, ","), "--mpc-threshold", strconv.Itoa(o.Threshold))
	}
	args = append(args, o.Args...)
	s.Proc = h.Launch(name, nil, HealthReady(s.APIURL), args...)
	return s
}

// Token creates an API token with `sigil token create` in the replica's
// database.
func (h *Harness) Token(s *Server, scopes ...string) string {
	h.t.Helper()
	args := []string{"token", "create", "--data-dir", s.DataDir, "--description", "proctest"}
	if s.DBURL != "" {
		args = append(args, "--database-url", s.DBURL)
	}
	for _, sc := range scopes {
		args = append(args, "--scope", sc)
	}
	out, err := exec.Command(h.bin, args...).Output()
	if err != nil {
		h.t.Fatalf("sigil token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// nodeArgs are the mTLS flags of a signer or driver named name.
func (h *Harness) nodeArgs(name, certFlag, keyFlag, caFlag string) []string {
	paths, ok := h.PKI.Nodes[name]
	if !ok {
		h.t.Fatalf("proctest: %s has no certificate: name it in New", name)
	}
	return []string{certFlag, paths.CertPath, keyFlag, paths.KeyPath, caFlag, h.PKI.CAPath, "--server-name", "localhost"}
}

// Driver is a running `sigil hsm-driver`.
type Driver struct {
	*Proc
	MetricsURL string
}

// StartDriver starts an HSM driver on token, polling the replicas at
// nodeURLs (in that order of preference), with the shared driver database
// at databaseURL (empty: SQLite in its own folder), and waits until it
// serves its metrics (it has opened the token, the database and its
// client).
func (h *Harness) StartDriver(name string, token hsm.Config, nodeURLs []string, databaseURL string, args ...string) *Driver {
	h.t.Helper()
	metrics := FreeAddr(h.t)
	d := &Driver{MetricsURL: "http://" + metrics + "/metrics"}
	all := []string{"hsm-driver", "--node-url", strings.Join(nodeURLs, ","),
		"--pkcs11-module", token.ModulePath, "--token-label", token.TokenLabel,
		"--data-dir", filepath.Join(h.Dir, name), "--metrics-addr", metrics, "--claim-wait", "5s", "--log-level", "debug"}
	all = append(all, h.nodeArgs(name, "--tls-cert", "--tls-key", "--node-ca")...)
	if token.Sessions > 0 {
		all = append(all, "--sessions", strconv.Itoa(token.Sessions))
	}
	if databaseURL != "" {
		all = append(all, "--database-url", databaseURL)
	}
	all = append(all, args...)
	d.Proc = h.Start(name, []string{"SIGIL_HSM_PIN=" + token.PIN}, HTTPReady(d.MetricsURL), all...)
	return d
}

// Signer is a running `sigil signer`.
type Signer struct {
	*Proc
	DataDir    string
	MetricsURL string
}

// SignerDir is the data folder StartSigner gives the signer name; seed it
// (KEK, shares) before starting the signer.
func (h *Harness) SignerDir(name string) string { return filepath.Join(h.Dir, name) }

// StartSigner starts an MPC signer on SignerDir(name), dialing the replicas
// at coordinatorURLs, and waits until it serves its metrics.
func (h *Harness) StartSigner(name string, coordinatorURLs []string, args ...string) *Signer {
	h.t.Helper()
	metrics := FreeAddr(h.t)
	s := &Signer{DataDir: h.SignerDir(name), MetricsURL: "http://" + metrics + "/metrics"}
	all := []string{"signer", "--coordinator", strings.Join(coordinatorURLs, ","),
		"--data-dir", s.DataDir, "--metrics-addr", metrics, "--log-level", "debug"}
	all = append(all, h.nodeArgs(name, "--cert", "--key", "--ca")...)
	all = append(all, args...)
	s.Proc = h.Start(name, nil, HTTPReady(s.MetricsURL), all...)
	return s
}

// Value reads one metric of a process now (see Metric).
func Value(ctx context.Context, metricsURL, name string, labels ...string) float64 {
	v, err := Metric(ctx, metricsURL, name, labels...)
	if err != nil {
		return -1
	}
	return v
}
