// Package sigiltest runs a real Sigil deployment for the tests of the Go SDK
// and the sigil CLI: a coordinator (servertest: loopback listeners, dev PKI,
// SQLite) serving the HSM backend, and an HSM driver on a fresh SoftHSM2
// token connected to its node port over mTLS. HSM key generation and signing
// take milliseconds, so tests get ACTIVE wallets and real signatures fast.
//
// SoftHSM2 lists its tokens when the module is initialised, so start one
// deployment at a time in a test binary (no t.Parallel between them).
package sigiltest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// Env is a running deployment.
type Env struct {
	*servertest.Env
	// Token is an admin API token.
	Token string
}

// Options adjust the deployment.
type Options struct {
	// NoDriver starts no HSM driver: HSM wallets stay CREATING forever,
	// which list and error tests can use without SoftHSM2.
	NoDriver bool
}

var tokenSeq atomic.Int64

// Start runs a coordinator with the HSM backend as its default and, unless
// opts.NoDriver, an HSM driver, until the test ends. It skips the test when
// SoftHSM2 is not installed (fails under CI=true; see hsmtest).
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	var hc hsm.Config
	if !opts.NoDriver {
		// The token first: SoftHSM2 sees only tokens made before a handle opens.
		label := fmt.Sprintf("sdk-%d-%s", tokenSeq.Add(1), sanitize(t.Name()))
		module, _, pin := hsmtest.NewToken(t, label)
		hc = hsm.Config{ModulePath: module, TokenLabel: label, PIN: pin, Sessions: 2}
		h, err := hsm.OpenToken(context.Background(), hc)
		if err != nil {
			t.Fatal(err)
		}
		err = errors.Join(h.InitMasterKey(context.Background()), h.InitAttestationKey(context.Background()))
		if cerr := h.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var attestKeys []string
	if !opts.NoDriver {
		// The coordinator pins the token's attestation key.
		attestKeys = []string{filepath.Join(t.TempDir(), "attestation-key.pem")}
		if err := cluster.EnsureAttestationKeys(context.Background(), attestKeys[0], hc); err != nil {
			t.Fatal(err)
		}
	}
	env := servertest.Start(t, servertest.Options{
		Configure: func(c *server.Config) { c.HSM, c.DefaultBackend, c.HSMAttestationKeys = true, "hsm", attestKeys },
	})
	e := &Env{Env: env, Token: env.Token(t, auth.ScopeAdmin)}
	if !opts.NoDriver {
		e.startDriver(t, hc)
	}
	return e
}

// startDriver runs an HSM driver against the coordinator's node port until
// the test ends.
func (e *Env) startDriver(t testing.TB, hc hsm.Config) {
	t.Helper()
	paths := e.PKI.Nodes["driver-x"]
	p, err := driver.Open(context.Background(), driver.Config{
		NodeURL: e.NodeURL, TLSCert: paths.CertPath, TLSKey: paths.KeyPath, NodeCA: e.PKI.CAPath, ServerName: "localhost",
		HSM: hc, DataDir: t.TempDir(), ClaimWait: 5 * time.Second, Logger: servertest.Logger(t).With("component", "hsm-driver"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// Registered after servertest's cleanup, so it runs first: the driver
	// stops before the coordinator.
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("HSM driver: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("HSM driver did not stop within 20 s")
		}
		if err := p.Close(); err != nil {
			t.Errorf("close HSM driver: %v", err)
		}
	})
}

// MintToken makes an API token with the given scopes.
func (e *Env) MintToken(t testing.TB, scopes ...auth.Scope) string {
	t.Helper()
	return e.Env.Token(t, scopes...)
}

func sanitize(name string) string {
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
	// PKCS#11 token labels are at most 32 bytes.
	return name[:min(len(name), 20)]
}
