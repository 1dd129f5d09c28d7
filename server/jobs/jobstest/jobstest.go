// Package jobstest serves DriverService for tests: the real handler, the
// real queue and the node port's real mTLS, identity and role checks, on a
// listener of its own beside a servertest coordinator and on its store.
//
// It exists because DriverService is mounted on the coordinator's node port
// by server.nodeHandler; until a test can reach it there, tests reach the
// same handler here. Jobs that the wallet API queues are found by the
// queue's periodic re-check (the API server in servertest does not notify
// this queue), so tests set a short Recheck.
package jobstest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/validate"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/internal/observe"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/node"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// Node is a DriverService endpoint.
type Node struct {
	URL      string // https://127.0.0.1:port
	Queue    *jobs.Queue
	Registry *prometheus.Registry
}

// Start serves DriverService over mTLS on env's store and PKI until the
// test ends.
func Start(t testing.TB, env *servertest.Env, cfg jobs.Config) *Node {
	t.Helper()
	q := jobs.New(env.Server.Store(), cfg)
	reg := observe.NewRegistry()
	logger := servertest.Logger(t)
	ds, err := node.NewDriverServer(q, env.Server.Attestation(), reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(driverv1connect.NewDriverServiceHandler(ds, connect.WithInterceptors(
		observe.NewInterceptor(reg, "node", logger), node.RoleInterceptor{}, validate.NewInterceptor())))
	tc, err := pki.ServerTLSConfig(env.PKI.ServerCert, env.PKI.ServerKey, env.PKI.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	tc.NextProtos = []string{"h2", "http/1.1"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	srv := &http.Server{Handler: node.RequireIdentity(mux), TLSConfig: tc, Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("jobstest: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		q.Close() // end long polls so shutdown is quick
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	})
	return &Node{URL: "https://" + ln.Addr().String(), Queue: q, Registry: reg}
}
