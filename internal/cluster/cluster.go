// Package cluster runs a whole Sigil deployment in one process: the
// coordinator and n MPC signers, each signer with its own SQLite database,
// KEK and certificate, all talking over real mTLS on loopback. `sigil dev`,
// `sigil bench mpc` and the end-to-end tests use it; nothing in it is a
// stand-in: the same server and signer code runs as in production.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/kek"
)

// Options describe the deployment.
type Options struct {
	// Dir holds everything: pki/, sigil.db, signers/<name>/.
	Dir string
	// Signers is n (default 3); Threshold is t (default 2).
	Signers, Threshold int
	// Server is the coordinator's configuration; the cluster fills the
	// node-port PKI, the data dir and the MPC group.
	Server server.Config
	// HSM, when set, adds an HSM driver and enables the hsm backend.
	HSM *HSMOptions
	// DeferSigners leaves the signers stopped; start them with
	// StartSigner (tests seed state first).
	DeferSigners bool
	// Policy is every signer's and the driver's signing policy (trusted
	// request keys, validation gate).
	Policy guard.Settings
	// Backup, when enabled, is every signer's share backup configuration.
	Backup backup.Config
	Logger *slog.Logger
}

// Cluster is a running deployment.
type Cluster struct {
	opts    Options
	PKI     *pki.DevPKI
	Server  *server.Server
	Names   []string
	ctx     context.Context
	cancel  context.CancelFunc
	serveWG sync.WaitGroup
	// The coordinator runs under a context of its own, so it can be
	// restarted while the signers keep running.
	srvCfg    server.Config
	srvCancel context.CancelFunc
	srvDone   chan struct{}
	mu        sync.Mutex
	signers   map[string]*running
	driver    *driver.Process
	hsmConfig hsm.Config // the driver's token, once prepareHSM ran
	// stopDriver cancels the driver's context; Close waits for it on
	// serveWG.
	stopDriver context.CancelFunc
	// replicas are extra coordinators (StartReplica); routes send signers
	// to one of them (RouteSigner).
	replicas []*Replica
	routes   map[string]string
}

type running struct {
	s      *signer.Signer
	cancel context.CancelFunc
	done   chan struct{}
}

// SignerName is the name of the i-th signer (from 1).
func SignerName(i int) string { return fmt.Sprintf("signer-%d", i) }

// Start builds the PKI (reusing one already in Dir), starts the coordinator
// and every signer.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Signers == 0 {
		opts.Signers = 3
	}
	if opts.Threshold == 0 {
		opts.Threshold = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{opts: opts, signers: map[string]*running{}}
	for i := 1; i <= opts.Signers; i++ {
		c.Names = append(c.Names, SignerName(i))
	}
	p, err := pki.EnsureDevPKI(filepath.Join(opts.Dir, "pki"), c.Names, []string{"driver-1", "driver-2"})
	if err != nil {
		return nil, fmt.Errorf("dev PKI: %w", err)
	}
	c.PKI = p
	cfg := opts.Server
	cfg.NodeTLSCert, cfg.NodeTLSKey, cfg.NodeClientCA = p.ServerCert, p.ServerKey, p.CAPath
	cfg.MPCSigners, cfg.MPCThreshold = c.Names, opts.Threshold
	cfg.HSM = cfg.HSM || opts.HSM != nil
	if cfg.DataDir == "" {
		cfg.DataDir = opts.Dir
	}
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if opts.HSM != nil {
		if err := c.prepareHSM(c.ctx, &cfg); err != nil {
			c.cancel()
			return nil, err
		}
	}
	if err := c.startServer(cfg); err != nil {
		c.cancel()
		return nil, err
	}
	if opts.HSM != nil {
		if err := c.startDriver(c.ctx); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	for _, name := range c.Names {
		if opts.DeferSigners {
			break
		}
		if err := c.StartSigner(name); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) startServer(cfg server.Config) error {
	srv, err := server.New(c.ctx, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	done := make(chan struct{})
	c.Server, c.srvCfg, c.srvCancel, c.srvDone = srv, cfg, cancel, done
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			c.opts.Logger.Error("coordinator stopped", "error", err)
		}
	}()
	return nil
}

func (c *Cluster) stopServer() error {
	if c.Server == nil {
		return nil
	}
	c.srvCancel()
	<-c.srvDone
	return c.Server.Close()
}

// RestartServer stops the coordinator and starts it again on the same
// addresses and database, as an operator's restart would; signers and the
// driver reconnect by themselves.
func (c *Cluster) RestartServer() error {
	cfg := c.srvCfg
	cfg.APIAddr, cfg.NodeAddr = c.Server.Addr("api"), c.Server.Addr("node")
	if err := c.stopServer(); err != nil {
		return err
	}
	return c.startServer(cfg)
}

// SignerDir is where a signer keeps its database and KEK.
func (c *Cluster) SignerDir(name string) string { return filepath.Join(c.opts.Dir, "signers", name) }

// StartSigner (re)starts one signer, creating its KEK on first start.
func (c *Cluster) StartSigner(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.signers[name]; ok {
		return nil
	}
	dir := c.SignerDir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kekPath := filepath.Join(dir, "kek.bin")
	if _, err := os.Stat(kekPath); errors.Is(err, os.ErrNotExist) {
		k, err := kek.Create(kekPath)
		if err != nil {
			return err
		}
		k.Destroy()
	}
	paths := c.PKI.Nodes[name]
	url := "https://" + c.Server.Addr("node")
	if u, ok := c.routes[name]; ok {
		url = u
	}
	s, err := signer.New(c.ctx, signer.Config{
		CoordinatorURL: url,
		CertFile:       paths.CertPath, KeyFile: paths.KeyPath, CAFile: c.PKI.CAPath,
		KEKFile: kekPath, SQLitePath: filepath.Join(dir, "shares.db"),
		ServerName: "localhost", Policy: c.opts.Policy,
		Backup: c.opts.Backup,
		Logger: c.opts.Logger.With("component", "signer"),
	})
	if err != nil {
		return fmt.Errorf("signer %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	r := &running{s: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = s.Run(ctx)
	}()
	c.signers[name] = r
	return nil
}

// StopSigner stops one signer, as a crash would: its connections drop and
// its in-memory protocol state is lost.
func (c *Cluster) StopSigner(name string) {
	c.mu.Lock()
	r, ok := c.signers[name]
	delete(c.signers, name)
	c.mu.Unlock()
	if !ok {
		return
	}
	r.cancel()
	<-r.done
	_ = r.s.Close()
}

// Signer returns a running signer, or nil.
func (c *Cluster) Signer(name string) *signer.Signer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.signers[name]; ok {
		return r.s
	}
	return nil
}

// Close stops the HSM driver and every signer, then the coordinator: the
// nodes go before the node port they dial, so they do not keep retrying a
// coordinator that is gone.
func (c *Cluster) Close() error {
	if c.stopDriver != nil {
		c.stopDriver()
	}
	c.serveWG.Wait()
	if c.driver != nil {
		_ = c.driver.Close()
	}
	for _, name := range c.Names {
		c.StopSigner(name)
	}
	c.stopReplicas()
	err := c.stopServer()
	c.cancel()
	return err
}

// Driver returns the running HSM driver, or nil.
func (c *Cluster) Driver() *driver.Process { return c.driver }

// Dir is the folder holding the whole deployment's files.
func (c *Cluster) Dir() string { return c.opts.Dir }
