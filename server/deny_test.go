package server_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/internal/seal"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/node"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// TestNodeDenyList denies a signer (by serial) and a driver (by SHA-256
// fingerprint) on a running coordinator, over real mTLS, by rewriting the
// --node-deny-list file: the signer's open ceremony stream is cut off, new
// handshakes and requests of both are refused, another driver is not
// touched, and lifting the denial lets them back in; no restart anywhere.
func TestNodeDenyList(t *testing.T) {
	deny := filepath.Join(t.TempDir(), "deny-list")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(deny, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# nobody denied yet\n")
	env := servertest.Start(t, servertest.Options{
		Signers: []string{"signer-1"}, Drivers: []string{"driver-y"},
		Configure: func(c *server.Config) {
			c.MPCSigners, c.MPCThreshold, c.HSM, c.NodeDenyList = []string{"signer-1", "signer-x"}, 2, true, deny
		},
	})
	ctx := context.Background()
	claim := func(hc driverv1connect.DriverServiceClient) error {
		_, err := hc.ClaimJob(ctx, connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(0)}))
		return err
	}
	driverX := driverv1connect.NewDriverServiceClient(env.NodeClient(t, "driver-x"), env.NodeURL)
	driverY := driverv1connect.NewDriverServiceClient(env.NodeClient(t, "driver-y"), env.NodeURL)
	if err := claim(driverX); err != nil {
		t.Fatalf("driver-x before the denial: %v", err)
	}

	// signer-1 opens its ceremony stream.
	pair, err := pki.LoadKeyPair(env.PKI.Nodes["signer-1"].CertPath, env.PKI.Nodes["signer-1"].KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	identity, err := seal.NewIdentity(pair)
	if err != nil {
		t.Fatal(err)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	// Each on its own connection, so the second makes a new handshake.
	first := ceremonyv1connect.NewCeremonyServiceClient(env.NodeClient(t, "signer-1"), env.NodeURL)
	second := ceremonyv1connect.NewCeremonyServiceClient(env.NodeClient(t, "signer-1"), env.NodeURL)
	watch := func(c ceremonyv1connect.CeremonyServiceClient) (*connect.ServerStreamForClient[ceremonyv1.WatchCeremoniesResponse], error) {
		return c.WatchCeremonies(watchCtx, connect.NewRequest(&ceremonyv1.WatchCeremoniesRequest{Announcement: identity.Announcement()}))
	}
	ended := make(chan error, 1)
	go func() {
		// The call returns with the stream's first message (the heartbeat,
		// 15 s away), so it runs beside the test.
		stream, err := watch(first)
		if err == nil {
			for stream.Receive() {
			}
			err = stream.Err()
		}
		ended <- err
	}()
	waitUntil(t, "signer-1 online", func() bool { return env.Server.OnlineSigners() == 1 })

	// Deny signer-1 by serial and driver-x by fingerprint, the way an
	// operator copies them from openssl x509 -serial / -fingerprint -sha256.
	fp := sha256.Sum256(leaf(t, env.PKI.Nodes["driver-x"].CertPath).Raw)
	write("serial:" + leaf(t, env.PKI.Nodes["signer-1"].CertPath).SerialNumber.Text(16) + " # signer-1, lost\n" +
		"sha256:" + hex.EncodeToString(fp[:]) + "\n")

	select {
	case err := <-ended:
		t.Logf("signer-1's stream ended: %v", err)
	case <-time.After(10 * node.DenyListPoll):
		t.Fatal("signer-1's open stream was not cut off")
	}
	waitUntil(t, "signer-1 offline", func() bool { return env.Server.OnlineSigners() == 0 })
	again, err := watch(second) // refused at once: no wait for a heartbeat
	if err == nil {
		again.Receive()
		err = again.Err()
		_ = again.Close()
	}
	wantHandshakeRefused(t, err)
	wantHandshakeRefused(t, claim(driverv1connect.NewDriverServiceClient(env.NodeClient(t, "driver-x"), env.NodeURL)))
	// On a connection opened before the denial, the request is refused.
	if err := claim(driverX); connect.CodeOf(err) != connect.CodePermissionDenied {
		wantHandshakeRefused(t, err)
	}
	if err := claim(driverY); err != nil {
		t.Fatalf("driver-y, not denied, was refused: %v", err)
	}

	write("# all forgiven\n")
	if err := claim(driverv1connect.NewDriverServiceClient(env.NodeClient(t, "driver-x"), env.NodeURL)); err != nil {
		t.Fatalf("driver-x after the denial was lifted: %v", err)
	}
}

// leaf parses the PEM certificate at path.
func leaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitUntil waits for a state the test cannot be told about, looking every
// few milliseconds, for at most 10 s.
func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
