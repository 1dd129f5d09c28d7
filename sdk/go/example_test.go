package sigil_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

// The examples below need a running server (`sigil dev` prints its URL and
// a token), so they are compiled but not run.

func ExampleNew() {
	client, err := sigil.New("http://127.0.0.1:8080",
		sigil.WithToken(os.Getenv("SIGIL_TOKEN")),
		sigil.WithTimeout(10*time.Second), // each call; the default is 30 s
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.BaseURL())
}

func ExampleNew_grpc() {
	// gRPC over h2c (plaintext HTTP/2) to an API port without TLS.
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")), sigil.WithGRPC())
	if err != nil {
		log.Fatal(err)
	}
	_ = client
}

func ExampleClient_CreateWalletAndWait() {
	ctx := context.Background()
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	wallet, err := client.CreateWalletAndWait(ctx,
		sigil.CreateWalletOptions{Name: "treasury", Backend: walletv1.Backend_BACKEND_MPC, ExternalID: "treasury-2024"},
		sigil.WaitOptions{Progress: func(w *walletv1.Wallet, elapsed time.Duration) {
			log.Printf("%s: %s after %s", w.GetId(), sigil.WalletStatusName(w.GetStatus()), elapsed.Round(time.Second))
		}})
	var failed *sigil.WalletFailedError
	if errors.As(err, &failed) {
		log.Fatalf("key generation failed: %s", failed.Reason())
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(wallet.GetId(), wallet.GetAddresses().GetEthereum(), wallet.GetAddresses().GetBitcoinP2Wpkh())
}

func ExampleClient_SignMessage() {
	ctx := context.Background()
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	// An EIP-191 personal message, as personal_sign signs it.
	sig, err := client.SignMessage(ctx, "wal_01j9z3k4m5n6p7q8r9s0t1v2w3", "Sign in to example.com", sigil.SignOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("0x%x\n", sig.GetResult().GetEthereum()) // r || s || v, v = 27 or 28
}

func ExampleClient_SignHash() {
	ctx := context.Background()
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	hash := sha256.Sum256([]byte("transaction bytes"))
	sig, err := client.SignHash(ctx, "wal_01j9z3k4m5n6p7q8r9s0t1v2w3", hash[:], sigil.SignOptions{ExternalID: "tx-42"})
	if err != nil {
		log.Fatal(err)
	}
	r := sig.GetResult()
	fmt.Printf("r=%x s=%x recovery id=%d DER=%x\n", r.GetR(), r.GetS(), r.GetRecoveryId(), r.GetDer())
}

func ExampleClient_Wallets() {
	ctx := context.Background()
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	// Every ACTIVE wallet, oldest first; pages are fetched as the loop goes.
	for w, err := range client.Wallets(ctx, sigil.ListOptions{Status: walletv1.WalletStatus_WALLET_STATUS_ACTIVE}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(w.GetId(), w.GetName())
	}
}

func ExampleClient_Signatures() {
	ctx := context.Background()
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	for s, err := range client.Signatures(ctx, sigil.ListSignaturesOptions{WalletID: "wal_01j9z3k4m5n6p7q8r9s0t1v2w3"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.GetId(), sigil.SignatureStatusName(s.GetStatus()))
	}
}

func ExampleIsNotFound() {
	// Errors from the server are *connect.Error values; the Is helpers test
	// their code.
	err := connect.NewError(connect.CodeNotFound, errors.New("wallet wal_01j9z3k4m5n6p7q8r9s0t1v2w3 not found"))
	fmt.Println(sigil.IsNotFound(err), sigil.IsPermissionDenied(err))
	fmt.Println(sigil.IsNotFound(fmt.Errorf("lookup: %w", err)))
	// Output:
	// true false
	// true
}

func ExampleSignatureFailedError() {
	err := error(&sigil.SignatureFailedError{Signature: &walletv1.Signature{
		Id:            "sig_01j9z3k4m5n6p7q8r9s0t1v2w3",
		Status:        walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED,
		FailureReason: "policy: amount above limit",
	}})
	var failed *sigil.SignatureFailedError
	if errors.As(err, &failed) {
		fmt.Println(failed.Rejected(), failed.Reason())
	}
	fmt.Println(err)
	// Output:
	// true policy: amount above limit
	// sigil: signature sig_01j9z3k4m5n6p7q8r9s0t1v2w3 was rejected: policy: amount above limit
}

func ExampleParseBackend() {
	b, err := sigil.ParseBackend("hsm")
	fmt.Println(b, err)
	_, err = sigil.ParseBackend("tpm")
	fmt.Println(err)
	// Output:
	// BACKEND_HSM <nil>
	// sigil: unknown backend "tpm": want mpc or hsm
}

func ExampleReason() {
	ctx := context.Background()
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")))
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: "wal_...", Message: "hello"})
	switch sigil.Reason(err) {
	case walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE:
		log.Print("the wallet's key is not ready yet: wait for it with WaitWallet")
	case walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT:
		log.Print("this external ID was used for another request")
	}
}

// Signing requests end to end with the application's request key (made by
// `sigil request-key init --out app.pem`): signers and HSM drivers that
// trust its public key verify every request themselves.
func ExampleWithRequestKey() {
	key, err := sigil.LoadRequestKey("app.pem")
	if err != nil {
		log.Fatal(err)
	}
	client, err := sigil.New("http://127.0.0.1:8080", sigil.WithToken(os.Getenv("SIGIL_TOKEN")), sigil.WithRequestKey(key))
	if err != nil {
		log.Fatal(err)
	}
	sig, err := client.SignMessage(context.Background(), "wal_01j9z3k4m5n6p7q8r9s0t1v2w3", "hello", sigil.SignOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sig.GetRequesterKey())
}
