package cluster

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/sigil-wallet/sigil/server"
)

// Replica is an extra coordinator replica on the cluster's database (which
// must be PostgreSQL: Options.Server.DatabaseURL).
type Replica struct {
	Server *server.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// NodeURL is the replica's node port, for signers and drivers.
func (r *Replica) NodeURL() string { return "https://" + r.Server.Addr("node") }

// Stop stops the replica as an operator would (its leases lapse at once).
func (r *Replica) Stop() error {
	r.cancel()
	<-r.done
	return r.Server.Close()
}

// StartReplica starts another coordinator with the first one's
// configuration on new loopback ports; the cluster stops it on Close.
func (c *Cluster) StartReplica() (*Replica, error) {
	if c.srvCfg.DatabaseURL == "" {
		return nil, fmt.Errorf("a second replica needs PostgreSQL (Options.Server.DatabaseURL)")
	}
	cfg := c.srvCfg
	cfg.APIAddr, cfg.NodeAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", ""
	cfg.DataDir = filepath.Join(c.opts.Dir, fmt.Sprintf("replica-%d", len(c.replicas)+2))
	srv, err := server.New(c.ctx, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(c.ctx)
	r := &Replica{Server: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := srv.Serve(ctx); err != nil {
			c.opts.Logger.Error("replica stopped", "error", err)
		}
	}()
	c.mu.Lock()
	c.replicas = append(c.replicas, r)
	c.mu.Unlock()
	return r, nil
}

// RouteSigner makes signer name connect to url (a replica's NodeURL) when
// it next starts, instead of the first coordinator.
func (c *Cluster) RouteSigner(name, url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.routes == nil {
		c.routes = map[string]string{}
	}
	c.routes[name] = url
}

// stopReplicas stops the extra replicas still running.
func (c *Cluster) stopReplicas() {
	c.mu.Lock()
	rs := c.replicas
	c.replicas = nil
	c.mu.Unlock()
	for _, r := range rs {
		select {
		case <-r.done:
		default:
			_ = r.Stop()
		}
	}
}
