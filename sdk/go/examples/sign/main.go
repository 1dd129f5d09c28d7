// Command sign is a small program that uses only the Go SDK: it creates a
// wallet (or uses the one given), signs a message with it as an EIP-191
// personal message, and prints the wallet's Ethereum address and the
// 65-byte signature. With `sigil dev` running:
//
//	SIGIL_TOKEN=$(jq -r .token sigil-data/dev.json) go run . -message hello
//
// Errors are told apart by the reason the server attaches (sigil.Reason).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

func main() {
	url := flag.String("url", envOr("SIGIL_URL", "http://127.0.0.1:8080"), "the Sigil API URL (SIGIL_URL)")
	walletID := flag.String("wallet", "", "an ACTIVE wallet to sign with; empty creates one")
	backend := flag.String("backend", "", "backend of a new wallet: mpc or hsm (default: the server's)")
	message := flag.String("message", "hello from the Sigil Go SDK", "the message to sign")
	flag.Parse()
	if err := run(*url, os.Getenv("SIGIL_TOKEN"), *walletID, *backend, *message); err != nil {
		fmt.Fprintln(os.Stderr, "sign:", err)
		os.Exit(1)
	}
}

func run(url, token, walletID, backend, message string) error {
	client, err := sigil.New(url, sigil.WithToken(token))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if walletID == "" {
		b, err := sigil.ParseBackend(backend)
		if err != nil {
			return err
		}
		w, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: "sdk example", Backend: b}, sigil.WaitOptions{})
		if err != nil {
			return err
		}
		walletID = w.GetId()
	}
	sig, err := client.SignMessage(ctx, walletID, message, sigil.SignOptions{})
	var failed *sigil.SignatureFailedError
	switch {
	case errors.As(err, &failed):
		return fmt.Errorf("the signature was refused or failed: %s", failed.Reason())
	case sigil.Reason(err) == walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE:
		return fmt.Errorf("wallet %s cannot sign yet (its key is still being made, or it failed): %w", walletID, err)
	case err != nil:
		return err
	}
	w, err := client.GetWallet(ctx, walletID)
	if err != nil {
		return err
	}
	fmt.Printf("wallet    %s\naddress   %s\nsignature 0x%x\n", w.GetId(), w.GetAddresses().GetEthereum(), sig.GetResult().GetEthereum())
	return nil
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
