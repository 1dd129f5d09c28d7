package driver_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/jobs/jobstest"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// tokens makes one SoftHSM token per label, all holding the same imported
// master key and each its own attestation key, and returns their configs
// and the master key material. Every token is made before any handle opens
// (SoftHSM lists tokens at C_Initialize).
func tokens(t testing.TB, labels ...string) ([]hsm.Config, []byte) {
	t.Helper()
	var cfgs []hsm.Config
	for _, l := range labels {
		module, _, pin := hsmtest.NewToken(t, l)
		cfgs = append(cfgs, hsm.Config{ModulePath: module, TokenLabel: l, PIN: pin, Sessions: 2})
	}
	material, err := hsm.GenerateMasterKeyMaterial()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var handles []*hsm.HSM
	for _, c := range cfgs {
		h, err := hsm.OpenToken(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
		if err := h.ImportMasterKey(ctx, bytes.Clone(material)); err != nil {
			t.Fatal(err)
		}
		if err := h.InitAttestationKey(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range handles {
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return cfgs, material
}

// deployment is a coordinator with DriverService and an API client.
type deployment struct {
	env  *servertest.Env
	node *jobstest.Node
	api  walletv1connect.WalletServiceClient
}

// deploy starts a coordinator that pins the attestation keys of the pinned
// tokens, as an operator does with --hsm-attestation-key.
func deploy(t testing.TB, dialect db.Dialect, queue jobs.Config, pinned []hsm.Config, drivers ...string) *deployment {
	t.Helper()
	attestKeys := filepath.Join(t.TempDir(), "attestation-keys.pem")
	if err := cluster.EnsureAttestationKeys(context.Background(), attestKeys, pinned...); err != nil {
		t.Fatal(err)
	}
	env := servertest.Start(t, servertest.Options{
		Dialect: dialect, Drivers: drivers,
		Configure: func(c *server.Config) {
			c.HSM, c.DefaultBackend, c.HSMAttestationKeys = true, "hsm", []string{attestKeys}
		},
	})
	if queue.Recheck == 0 {
		// The API server does not notify this queue (see jobstest).
		queue.Recheck = 20 * time.Millisecond
	}
	token := env.Token(t, auth.ScopeAdmin)
	bearer := connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	})
	return &deployment{
		env:  env,
		node: jobstest.Start(t, env, queue),
		api:  walletv1connect.NewWalletServiceClient(servertest.H2CClient(), env.APIURL, connect.WithInterceptors(bearer)),
	}
}

// driverOpts shape one in-process driver.
type driverOpts struct {
	name        string // certificate name, default driver-x
	hsm         hsm.Config
	databaseURL string // empty: SQLite in a temp dir
	dataDir     string
	concurrency int
	onComplete  func(*driverv1.Job)
}

// startDriver runs a driver until the test ends.
func (d *deployment) startDriver(t testing.TB, o driverOpts) *driver.Process {
	t.Helper()
	p, _ := d.startDriverStop(t, o)
	return p
}

// startDriverStop runs a driver until stop is called or the test ends.
func (d *deployment) startDriverStop(t testing.TB, o driverOpts) (*driver.Process, func()) {
	t.Helper()
	p, err := driver.Open(context.Background(), d.driverConfig(t, o))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("driver: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("driver did not stop within 20 s")
			}
			if err := p.Close(); err != nil {
				t.Errorf("close driver: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return p, stop
}

// driverConfig is the configuration of a driver shaped by o.
func (d *deployment) driverConfig(t testing.TB, o driverOpts) driver.Config {
	t.Helper()
	if o.name == "" {
		o.name = "driver-x"
	}
	if o.databaseURL == "" && o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	paths := d.env.PKI.Nodes[o.name]
	return driver.Config{
		NodeURL: d.node.URL, TLSCert: paths.CertPath, TLSKey: paths.KeyPath, NodeCA: d.env.PKI.CAPath, ServerName: "localhost",
		HSM: o.hsm, DatabaseURL: o.databaseURL, DataDir: o.dataDir, Concurrency: o.concurrency,
		ClaimWait: 5 * time.Second, Logger: servertest.Logger(t).With("driver", o.name), AfterComplete: o.onComplete,
	}
}

func (d *deployment) activeWallet(t testing.TB) *walletv1.Wallet {
	t.Helper()
	resp, err := d.api.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Msg.GetWallet().GetId()
	var w *walletv1.Wallet
	waitFor(t, 30*time.Second, "wallet "+id+" active", func() bool {
		got, err := d.api.GetWallet(context.Background(), connect.NewRequest(&walletv1.GetWalletRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		w = got.Msg.GetWallet()
		if w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_FAILED {
			t.Fatalf("wallet failed: %s", w.GetFailureReason())
		}
		return w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_ACTIVE
	})
	return w
}

func (d *deployment) signed(t testing.TB, req *walletv1.CreateSignatureRequest) *walletv1.Signature {
	t.Helper()
	resp, err := d.api.CreateSignature(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Msg.GetSignature().GetId()
	var sg *walletv1.Signature
	waitFor(t, 30*time.Second, "signature "+id+" signed", func() bool {
		got, err := d.api.GetSignature(context.Background(), connect.NewRequest(&walletv1.GetSignatureRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		sg = got.Msg.GetSignature()
		if sg.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED {
			t.Fatalf("signature failed: %s", sg.GetFailureReason())
		}
		return sg.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED
	})
	return sg
}

func waitFor(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
