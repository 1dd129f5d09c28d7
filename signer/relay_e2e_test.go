package signer_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	deliveryv1 "github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/delivery/v1/deliveryv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/pki"
	"github.com/sigil-wallet/sigil/server/ceremony"
	"github.com/sigil-wallet/sigil/server/store"
)

func nodeClient(t *testing.T, tc *testCluster, name string) *http.Client {
	t.Helper()
	p := tc.PKI.Nodes[name]
	cfg, err := pki.ClientTLSConfig(p.CertPath, p.KeyPath, tc.PKI.CAPath, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// runningSign waits for the signing ceremony of a new request to start.
func runningSign(t *testing.T, tc *testCluster) *store.Ceremony {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		open, err := tc.Server.Store().OpenCeremonies(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range open {
			if c.Kind == store.CeremonySign && c.State == store.CeremonyRunning {
				return c
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no signing ceremony started")
	return nil
}

// TestRelayIsBlindAndStrict plays a malicious coordinator and a nosy
// signer against a real signing ceremony: forged, tampered and replayed
// messages injected into the relay are dropped by the signers (the
// signature still completes and verifies), and a signer outside the
// ceremony can neither read a party's mail nor send into it.
func TestRelayIsBlindAndStrict(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an MPC signing ceremony; skipped with -short")
	}
	tc := startCluster(t, 3, 2, true)
	walletID, pub := tc.seedWallet(t, 3, 2) // two of three sign: the third is the outsider
	ctx := context.Background()
	res, err := tc.client.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(3)}}))
	if err != nil {
		t.Fatal(err)
	}
	c := runningSign(t, tc)
	a, b := c.Parties[0], c.Parties[1]
	var outsider string
	for _, n := range tc.Names {
		if n != a && n != b {
			outsider = n
		}
	}

	// The outsider may not read a party's mailbox, nor its own in this
	// ceremony, nor send into it, nor report on it.
	dc := deliveryv1connect.NewDeliveryServiceClient(nodeClient(t, tc, outsider), "https://"+tc.Server.Addr("node"))
	stream, err := dc.Receive(ctx, connect.NewRequest(&deliveryv1.ReceiveRequest{CeremonyId: c.ID}))
	if err == nil {
		stream.Receive()
		err = stream.Err()
		stream.Close()
	}
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("outsider reading the ceremony's mail: %v, want PermissionDenied", err)
	}
	_, err = dc.Send(ctx, connect.NewRequest(&deliveryv1.SendRequest{CeremonyId: c.ID, Messages: []*deliveryv1.OutgoingMessage{{To: a, Sealed: []byte("x")}}}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("outsider sending into the ceremony: %v, want PermissionDenied", err)
	}
	cc := ceremonyv1connect.NewCeremonyServiceClient(nodeClient(t, tc, outsider), "https://"+tc.Server.Addr("node"))
	_, err = cc.CompleteCeremony(ctx, connect.NewRequest(&ceremonyv1.CompleteCeremonyRequest{CeremonyId: c.ID,
		Output: &ceremonyv1.CompleteCeremonyRequest_Sign{Sign: &ceremonyv1.SignOutput{Signature: make([]byte, 64)}}}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("outsider reporting a result: %v, want PermissionDenied", err)
	}
	// A party may not send to itself (nor, by construction, as anyone else:
	// the sender is its certificate).
	pc := deliveryv1connect.NewDeliveryServiceClient(nodeClient(t, tc, a), "https://"+tc.Server.Addr("node"))
	_, err = pc.Send(ctx, connect.NewRequest(&deliveryv1.SendRequest{CeremonyId: c.ID, Messages: []*deliveryv1.OutgoingMessage{{To: a, Sealed: []byte("x")}}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("party sending to itself: %v, want InvalidArgument", err)
	}

	// A party may not flood the relay: one message larger than the whole
	// ceremony needs, or more messages than it needs, is ResourceExhausted
	// and stored not at all (the ceremony below still completes).
	quota := ceremony.RelayQuota(store.CeremonySign, len(c.Parties))
	_, err = pc.Send(ctx, connect.NewRequest(&deliveryv1.SendRequest{CeremonyId: c.ID, Messages: []*deliveryv1.OutgoingMessage{
		{To: b, Sealed: make([]byte, quota.Bytes+1)}}}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("party sending %d bytes: %v, want ResourceExhausted naming the quota", quota.Bytes+1, err)
	}
	flood := &deliveryv1.SendRequest{CeremonyId: c.ID}
	for range quota.Messages + 1 {
		flood.Messages = append(flood.Messages, &deliveryv1.OutgoingMessage{To: b, Sealed: []byte("x")})
	}
	_, err = pc.Send(ctx, connect.NewRequest(flood))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("party sending %d messages: %v, want ResourceExhausted", quota.Messages+1, err)
	}

	// The malicious relay: garbage in a's name, a copy of a real message
	// (a replay), and a real message with one bit flipped (refused too: its
	// sequence number is spent and its signature no longer verifies).
	st := tc.Server.Store()
	var real []byte
	for deadline := time.Now().Add(10 * time.Second); real == nil && time.Now().Before(deadline); {
		box, _ := st.Mailbox(ctx, c.ID, b, 0, 1)
		if len(box) > 0 {
			real = box[0].Sealed
		}
		time.Sleep(10 * time.Millisecond)
	}
	flipped := bytes.Clone(real)
	flipped[len(flipped)/2] ^= 1
	if err := st.AppendMessages(ctx, c.ID, a, []store.OutgoingMessage{
		{Recipient: b, Sealed: []byte("not an envelope")},
		{Recipient: b, Sealed: real},
		{Recipient: b, Sealed: flipped},
	}); err != nil {
		t.Fatal(err)
	}
	s := tc.waitSignature(t, res.Msg.GetSignature().GetId(), time.Minute)
	verifySignature(t, pub, s)
}
