package signer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"google.golang.org/protobuf/types/known/durationpb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

type testCluster struct {
	*cluster.Cluster
	client walletv1connect.WalletServiceClient
}

func startCluster(t *testing.T, n, threshold int, deferSigners bool) *testCluster {
	t.Helper()
	return startClusterOpts(t, cluster.Options{Signers: n, Threshold: threshold, DeferSigners: deferSigners})
}

// startClusterOpts starts a cluster in a temporary directory on loopback
// ports with the test logger; opts gives the rest (signers, HSM).
func startClusterOpts(t *testing.T, opts cluster.Options) *testCluster {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.Server.APIAddr, opts.Server.NodeAddr, opts.Server.QuorumWait = "127.0.0.1:0", "127.0.0.1:0", 3*time.Second
	if opts.Logger == nil {
		opts.Logger = servertest.Logger(t)
	}
	c, err := cluster.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	token, err := auth.Mint(context.Background(), c.Server.Store(), []auth.Scope{auth.ScopeAdmin}, "test")
	if err != nil {
		t.Fatal(err)
	}
	client := walletv1connect.NewWalletServiceClient(servertest.H2CClient(), c.Server.APIURL(),
		connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
	return &testCluster{Cluster: c, client: client}
}

// seedWallet makes an active wallet from the committed fixture key (made
// by this project's own keygen), so signing tests need no key generation:
// the coordinator records it as a finished key generation and each signer
// stores its share sealed under its own KEK. Call before the signers start.
func (tc *testCluster) seedWallet(t *testing.T, n, threshold int) (string, []byte) {
	t.Helper()
	return tc.seedWalletWithout(t, n, threshold, "")
}

// seedWalletWithout seeds a wallet whose share is missing at one signer
// (none when lacking is empty), as after a lost signer database.
func (tc *testCluster) seedWalletWithout(t *testing.T, n, threshold int, lacking string) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	cfgs := mpctest.Configs(t, n, threshold)
	pub, err := mpc.PublicKey(cfgs[party.ID("signer-1")])
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletCreating, Threshold: threshold, Signers: tc.Names}
	keygen := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, WalletID: w.ID, State: store.CeremonyWaiting,
		Threshold: threshold, GroupSigners: tc.Names}
	st := tc.Server.Store()
	if _, _, err := st.CreateWallet(ctx, w, store.Work{Ceremony: keygen}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: keygen.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: pub}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range tc.Names {
		if err := tc.StartSigner(name); err != nil {
			t.Fatal(err)
		}
		if name == lacking {
			continue
		}
		if err := signer.ImportShare(ctx, tc.Signer(name), w.ID, keygen.ID, cfgs[party.ID(name)]); err != nil {
			t.Fatal(err)
		}
	}
	return w.ID, pub
}

// waitWallet holds GetWallet calls (their wait) until the wallet settles.
func (tc *testCluster) waitWallet(t *testing.T, id string, timeout time.Duration) *walletv1.Wallet {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := tc.client.GetWallet(context.Background(), connect.NewRequest(&walletv1.GetWalletRequest{Id: id, Wait: durationpb.New(20 * time.Second)}))
		if err != nil {
			t.Fatal(err)
		}
		if w := res.Msg.GetWallet(); w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_CREATING {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("wallet %s still creating after %s", id, timeout)
		}
	}
}

func (tc *testCluster) sign(t *testing.T, req *walletv1.CreateSignatureRequest, timeout time.Duration) *walletv1.Signature {
	t.Helper()
	res, err := tc.client.CreateSignature(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	return tc.waitSignature(t, res.Msg.GetSignature().GetId(), timeout)
}

// waitSignature holds GetSignature calls (their wait) until the request
// settles.
func (tc *testCluster) waitSignature(t *testing.T, id string, timeout time.Duration) *walletv1.Signature {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := tc.client.GetSignature(context.Background(), connect.NewRequest(&walletv1.GetSignatureRequest{Id: id, Wait: durationpb.New(20 * time.Second)}))
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Msg.GetSignature(); s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("signature %s still pending after %s", id, timeout)
		}
	}
}

// verifySignature checks a signed result with implementations independent
// of multi-party-sig: go-ethereum (ecrecover, VerifySignature) and OpenSSL.
func verifySignature(t *testing.T, pub []byte, s *walletv1.Signature) {
	t.Helper()
	if s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
		t.Fatalf("signature %s is %v: %s", s.GetId(), s.GetStatus(), s.GetFailureReason())
	}
	r := s.GetResult()
	if err := ethtest.VerifyHash(pub, s.GetDigest(), r.GetR(), r.GetS()); err != nil {
		t.Fatalf("go-ethereum VerifySignature: %v", err)
	}
	addr, err := address.Ethereum(pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ethtest.RecoverAddress(s.GetDigest(), r.GetEthereum())
	if err != nil || !strings.EqualFold(got, addr) {
		t.Fatalf("ecrecover = %s, %v; want %s", got, err, addr)
	}
	if s.GetKind() == walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE {
		if err := ethtest.VerifyPersonalSign([]byte(s.GetMessage()), r.GetEthereum(), addr); err != nil {
			t.Fatalf("EIP-191 personal_sign check: %v", err)
		}
	}
	ethtest.VerifyDER(t, pub, s.GetDigest(), r.GetDer())
}

func hashOf(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSignWithOneSignerDownThenTwo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC signing ceremonies (seconds each); skipped with -short")
	}
	tc := startCluster(t, 3, 2, true)
	walletID, pub := tc.seedWallet(t, 3, 2)

	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(7)}}, time.Minute)
	verifySignature(t, pub, s)

	tc.StopSigner("signer-1")
	s = tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Message{Message: "one signer down"}}, time.Minute)
	verifySignature(t, pub, s)

	tc.StopSigner("signer-2")
	s = tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(9)}}, time.Minute)
	if s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED ||
		!strings.Contains(s.GetFailureReason(), "1 of the wallet's 3 signers are online (signer-3) and 2 are needed") {
		t.Fatalf("with two of three down: %v %q", s.GetStatus(), s.GetFailureReason())
	}
}

func TestSignerKilledMidSigning(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC signing ceremonies (seconds each); skipped with -short")
	}
	tc := startCluster(t, 3, 2, true)
	walletID, pub := tc.seedWallet(t, 3, 2)
	ctx := context.Background()
	res, err := tc.client.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Message{Message: "kill one signer mid-way"}}))
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the ceremony to run, let the protocol get under way, then
	// kill one of its parties.
	var victim string
	for victim == "" {
		open, err := tc.Server.Store().OpenCeremonies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range open {
			if c.Kind == store.CeremonySign && c.State == store.CeremonyRunning {
				victim = c.Parties[0]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	tc.StopSigner(victim)
	s := tc.waitSignature(t, res.Msg.GetSignature().GetId(), 2*time.Minute)
	verifySignature(t, pub, s)
}

// TestSignerWithoutShareIsLeftOut: a signer that fails on its own (here it
// lost its share) is blamed and the next attempt uses another quorum, so
// the request still completes with the healthy signers.
func TestSignerWithoutShareIsLeftOut(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC signing ceremonies (seconds each); skipped with -short")
	}
	tc := startCluster(t, 3, 2, true)
	walletID, pub := tc.seedWalletWithout(t, 3, 2, "signer-1") // the first quorum tried includes signer-1
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(5)}}, 2*time.Minute)
	verifySignature(t, pub, s)
}
