package server_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"google.golang.org/protobuf/types/known/durationpb"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1/driverv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/auth"
)

// waitResult is what a held Get call returned.
type waitResult[T any] struct {
	msg     T
	err     error
	elapsed time.Duration
}

// TestGetWaitsForTheOutcome holds GetWallet and GetSignature with a wait
// and completes the HSM jobs behind them through the DriverService: each
// call answers with the final status as soon as the driver's report is
// stored, long before its wait or the replicas' recheck.
func TestGetWaitsForTheOutcome(t *testing.T) {
	env := startMPC(t)
	admin := env.Token(t, auth.ScopeAdmin)
	ctx := context.Background()
	driver := driverv1connect.NewDriverServiceClient(env.NodeClient(t, "driver-x"), env.NodeURL)
	key, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := walletClient(env, admin, p.opts...)
			created, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Backend: walletv1.Backend_BACKEND_HSM}))
			if err != nil {
				t.Fatal(err)
			}
			id := created.Msg.GetWallet().GetId()
			gotWallet := make(chan waitResult[*walletv1.Wallet], 1)
			go func() {
				start := time.Now()
				res, err := c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: id, Wait: durationpb.New(50 * time.Second)}))
				gotWallet <- waitResult[*walletv1.Wallet]{msg: res.Msg.GetWallet(), err: err, elapsed: time.Since(start)}
			}()
			job := claimJob(t, driver)
			pub := key.PubKey().SerializeCompressed()
			keyID, sig := env.Attest(t, job.GetWalletId(), pub)
			if _, err := driver.CompleteJob(ctx, connect.NewRequest(&driverv1.CompleteJobRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId(),
				Result: &driverv1.CompleteJobRequest_Keygen{Keygen: &driverv1.KeygenJobResult{PublicKey: pub,
					Attestation: &driverv1.KeyAttestation{KeyId: keyID, Signature: sig}}}})); err != nil {
				t.Fatal(err)
			}
			w := <-gotWallet
			if w.err != nil || w.msg.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
				t.Fatalf("held GetWallet = %v, %v", w.msg.GetStatus(), w.err)
			}
			if w.elapsed > 4*time.Second {
				t.Fatalf("held GetWallet answered after %v: not woken by the outcome", w.elapsed)
			}

			digest := sha256.Sum256([]byte(p.name))
			sres, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: id,
				Payload: &walletv1.CreateSignatureRequest_Hash{Hash: digest[:]}}))
			if err != nil {
				t.Fatal(err)
			}
			sid := sres.Msg.GetSignature().GetId()
			// A short wait answers PENDING when it passes.
			res, err := c.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: sid, Wait: durationpb.New(50 * time.Millisecond)}))
			if err != nil || res.Msg.GetSignature().GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING {
				t.Fatalf("GetSignature after its wait = %v, %v", res.Msg.GetSignature().GetStatus(), err)
			}
			gotSig := make(chan waitResult[*walletv1.Signature], 1)
			go func() {
				start := time.Now()
				res, err := c.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: sid, Wait: durationpb.New(50 * time.Second)}))
				gotSig <- waitResult[*walletv1.Signature]{msg: res.Msg.GetSignature(), err: err, elapsed: time.Since(start)}
			}()
			job = claimJob(t, driver)
			compact := ecdsa.SignCompact(key, digest[:], true)
			if _, err := driver.CompleteJob(ctx, connect.NewRequest(&driverv1.CompleteJobRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId(),
				Result: &driverv1.CompleteJobRequest_Sign{Sign: &driverv1.SignJobResult{Signature: compact[1:]}}})); err != nil {
				t.Fatal(err)
			}
			s := <-gotSig
			if s.err != nil || s.msg.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
				t.Fatalf("held GetSignature = %v, %v", s.msg.GetStatus(), s.err)
			}
			if s.elapsed > 4*time.Second {
				t.Fatalf("held GetSignature answered after %v: not woken by the outcome", s.elapsed)
			}

			// A driver's refusal (policy, gate) wakes the waiters too.
			rres, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: id,
				Payload: &walletv1.CreateSignatureRequest_Message{Message: "refused " + p.name}}))
			if err != nil {
				t.Fatal(err)
			}
			rid := rres.Msg.GetSignature().GetId()
			go func() {
				start := time.Now()
				res, err := c.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: rid, Wait: durationpb.New(50 * time.Second)}))
				gotSig <- waitResult[*walletv1.Signature]{msg: res.Msg.GetSignature(), err: err, elapsed: time.Since(start)}
			}()
			job = claimJob(t, driver)
			if _, err := driver.FailJob(ctx, connect.NewRequest(&driverv1.FailJobRequest{JobId: job.GetId(), LeaseId: job.GetLeaseId(),
				Error: "the validation gate refused", Rejected: true})); err != nil {
				t.Fatal(err)
			}
			if s := <-gotSig; s.err != nil || s.msg.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED || s.elapsed > 4*time.Second {
				t.Fatalf("held GetSignature of a refused request = %v, %v after %v; want REJECTED at once", s.msg.GetStatus(), s.err, s.elapsed)
			}
		})
	}
}

func claimJob(t *testing.T, driver driverv1connect.DriverServiceClient) *driverv1.Job {
	t.Helper()
	res, err := driver.ClaimJob(context.Background(), connect.NewRequest(&driverv1.ClaimJobRequest{Wait: durationpb.New(10 * time.Second)}))
	if err != nil || res.Msg.GetJob() == nil {
		t.Fatalf("ClaimJob = %v, %v", res, err)
	}
	return res.Msg.GetJob()
}

func TestGetWaitIsBounded(t *testing.T) {
	env := startMPC(t)
	c := walletClient(env, env.Token(t, auth.ScopeAdmin))
	ctx := context.Background()
	for _, d := range []time.Duration{61 * time.Second, -time.Second} {
		_, err := c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: "wal_00000000000000000000000000", Wait: durationpb.New(d)}))
		wantCode(t, err, connect.CodeInvalidArgument, "wait")
		_, err = c.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: "sig_00000000000000000000000000", Wait: durationpb.New(d)}))
		wantCode(t, err, connect.CodeInvalidArgument, "wait")
	}
	// A wait on an unknown id is NotFound at once, not after the wait.
	start := time.Now()
	_, err := c.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: "wal_00000000000000000000000000", Wait: durationpb.New(30 * time.Second)}))
	wantCode(t, err, connect.CodeNotFound, "")
	if time.Since(start) > 5*time.Second {
		t.Fatal("an unknown wallet was waited for")
	}
}
