package signer_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
)

// TestTwoReplicasSignAndKeygen runs two coordinator replicas with MPC on
// one PostgreSQL database, signer-1 connected to the first and signer-2 and
// signer-3 to the second. Signatures asked of either replica complete with
// quorums that span both (presence, ceremony hand-out and relay all cross
// replicas through the database), and so does a key generation asked of
// the second, whose wallet then signs.
func TestTwoReplicasSignAndKeygen(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC ceremonies on PostgreSQL; skipped with -short")
	}
	tc := startClusterOpts(t, cluster.Options{Signers: 3, Threshold: 2, DeferSigners: true,
		Server: server.Config{DatabaseURL: dbtest.PostgresURL(t)}})
	b, err := tc.StartReplica()
	if err != nil {
		t.Fatal(err)
	}
	tc.RouteSigner("signer-2", b.NodeURL())
	tc.RouteSigner("signer-3", b.NodeURL())
	walletID, pub := tc.seedWallet(t, 3, 2)
	clientB := &testCluster{Cluster: tc.Cluster, client: apiClient(t, tc.Server.Store(), b.Server.APIURL())}

	for i, c := range []*testCluster{tc, clientB, tc} {
		s := c.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID,
			Payload: &walletv1.CreateSignatureRequest_Message{Message: "across replicas " + string(rune('a'+i))}}, 2*time.Minute)
		verifySignature(t, pub, s)
	}
	// Every signing ceremony ran under one replica's lease; both replicas
	// took part through their signers.
	kg, err := clientB.client.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{Name: "two replicas"}))
	if err != nil {
		t.Fatal(err)
	}
	w := clientB.waitWallet(t, kg.Msg.GetWallet().GetId(), 5*time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("key generation across replicas: %v %q", w.GetStatus(), w.GetFailureReason())
	}
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: w.GetId(),
		Payload: &walletv1.CreateSignatureRequest_Message{Message: "new key"}}, 2*time.Minute)
	verifySignature(t, w.GetPublicKey(), s)
}

// apiClient is a wallet API client of the coordinator at url with an admin
// token of its own.
func apiClient(t *testing.T, st *store.SQL, url string) walletv1connect.WalletServiceClient {
	t.Helper()
	token, err := auth.Mint(context.Background(), st, []auth.Scope{auth.ScopeAdmin}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return walletv1connect.NewWalletServiceClient(servertest.H2CClient(), url,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
}
