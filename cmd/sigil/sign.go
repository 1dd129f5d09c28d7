package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

func signCommand() *command {
	return &command{
		name:    "sign",
		summary: "sign a 32-byte hash, an EIP-191 message or raw message bytes with a wallet",
		usage: `Asks an ACTIVE wallet to sign, waits for the result and prints it in the
encodings of the wallet's scheme: r, s, v, DER and the 65-byte Ethereum form
for ECDSA; the 64-byte BIP-340 signature for Schnorr (by the Taproot output
key: a key-path spend witness); the 64-byte RFC 8032 signature for Ed25519.
--hash signs 32 bytes as is (ECDSA, Schnorr: a BIP-341 sighash); --message
signs text as an EIP-191 personal message (ECDSA), whose Ethereum form
recovers the wallet's address; --raw-message signs hex bytes as they are
(Ed25519, e.g. a Solana transaction message). With --request-key the
request is signed end to end with the application's request key, which
signers and HSM drivers that require signed requests verify. Exits 1 if the
request is rejected or fails. Examples:

  sigil sign --wallet wal_01j9z3k4m5n6p7q8r9s0t1v2w3 --message "hello"
  sigil sign --wallet wal_01j9z3k4m5n6p7q8r9s0t1v2w3 --hash 0x$(printf tx | sha256sum | cut -c1-64) --json
  sigil sign --wallet wal_01j9z3k4m5n6p7q8r9s0t1v2w3 --raw-message 0x68656c6c6f`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var api apiFlags
			var walletID, hashHex, message, rawHex, externalID string
			var noWait bool
			api.add(fs)
			fs.StringVar(&walletID, "wallet", "", "id of the wallet that signs (wal_...)")
			fs.StringVar(&hashHex, "hash", "", "32-byte hash to sign, as 64 hex digits (0x optional)")
			fs.StringVar(&message, "message", "", "text to sign as an EIP-191 personal message")
			fs.StringVar(&rawHex, "raw-message", "", "message bytes (hex, 0x optional) to sign as they are, for Ed25519 wallets")
			fs.StringVar(&externalID, "external-id", "", "idempotency key: repeating the command with it returns the same signature")
			fs.BoolVar(&noWait, "no-wait", false, "print the request as created (usually PENDING) without waiting for the result")
			fs.StringVar(&api.requestKey, "request-key", "", "request key file (`sigil request-key init`) signing the request end to end (default: request_key_file of <data-dir>/dev.json, if any)")
			return func() error {
				req := sigil.CreateSignatureOptions{WalletID: walletID, Message: message, ExternalID: externalID}
				if walletID == "" {
					return fmt.Errorf("%w: --wallet is required", errUsage)
				}
				if n := countSet(hashHex, message, rawHex); n != 1 {
					return fmt.Errorf("%w: give exactly one of --hash, --message and --raw-message", errUsage)
				}
				if rawHex != "" {
					raw, err := hex.DecodeString(strings.TrimPrefix(rawHex, "0x"))
					if err != nil || len(raw) == 0 {
						return fmt.Errorf("%w: --raw-message: want hex bytes (0x optional)", errUsage)
					}
					req.RawMessage = raw
				}
				if hashHex != "" {
					h, err := parseHash(hashHex)
					if err != nil {
						return fmt.Errorf("%w: --hash: %w", errUsage, err)
					}
					req.Hash = h
				}
				client, err := api.client()
				if err != nil {
					return err
				}
				s, err := client.CreateSignature(env.ctx, req)
				if err != nil {
					return apiError(err)
				}
				if !noWait && s.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING {
					s, err = waitForSignature(env, client, s.GetId())
				} else if s.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED || s.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED {
					err = &sigil.SignatureFailedError{Signature: s}
				}
				if s != nil {
					if perr := api.print(env, s, func(o io.Writer) error { return printSignature(o, s) }); perr != nil {
						return perr
					}
				}
				return apiError(err)
			}
		},
	}
}

// parseHash reads 64 hex digits, with or without 0x.
func parseHash(s string) ([]byte, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("not hex: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("want 32 bytes (64 hex digits), got %d bytes", len(b))
	}
	return b, nil
}

// waitForSignature waits for a PENDING request with progress on stderr (an
// MPC signature takes a few seconds). One that was REJECTED or FAILED is
// returned with its error.
func waitForSignature(env *cliEnv, client *sigil.Client, id string) (*walletv1.Signature, error) {
	p := newWaitProgress(env, "signing "+id)
	start := time.Now()
	got, err := client.WaitSignature(env.ctx, id, sigil.SignatureWaitOptions{Progress: func(s *walletv1.Signature, elapsed time.Duration) {
		// Only a wait long enough to notice gets a progress line.
		if elapsed >= time.Second {
			p.update(strings.ToLower(sigil.SignatureStatusName(s.GetStatus())), elapsed)
		}
	}})
	switch {
	case err == nil || got != nil:
		p.finish(strings.ToLower(sigil.SignatureStatusName(got.GetStatus())), time.Since(start))
	case errors.Is(err, context.Canceled):
		p.finish("stopped waiting", time.Since(start))
		fmt.Fprintf(env.stderr, "The request goes on; its id is %s\n", id)
	default:
		p.finish("error", time.Since(start))
	}
	return got, err
}

// printSignature writes a signature request and its result as a short
// aligned block.
func printSignature(w io.Writer, s *walletv1.Signature) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("Signature", s.GetId())
	row("Wallet", s.GetWalletId())
	row("Status", sigil.SignatureStatusName(s.GetStatus()))
	row("Failure", s.GetFailureReason())
	switch s.GetKind() {
	case walletv1.SignatureKind_SIGNATURE_KIND_HASH:
		row("Kind", "hash")
		row("Hash", "0x"+hex.EncodeToString(s.GetHash()))
	case walletv1.SignatureKind_SIGNATURE_KIND_EIP191_MESSAGE:
		row("Kind", "EIP-191 message")
		row("Message", fmt.Sprintf("%q", s.GetMessage()))
		row("Digest", "0x"+hex.EncodeToString(s.GetDigest()))
	case walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE:
		row("Kind", "raw message")
		row("Message", "0x"+hex.EncodeToString(s.GetRawMessage()))
	}
	row("External ID", s.GetExternalId())
	if r := s.GetResult(); len(r.GetSchnorr()) > 0 {
		row("Schnorr", hex.EncodeToString(r.GetSchnorr()))
	} else if len(r.GetEd25519()) > 0 {
		row("Ed25519", hex.EncodeToString(r.GetEd25519()))
	} else if r != nil {
		row("r", "0x"+hex.EncodeToString(r.GetR()))
		row("s", "0x"+hex.EncodeToString(r.GetS()))
		row("v", fmt.Sprintf("%d (recovery id %d)", 27+r.GetRecoveryId(), r.GetRecoveryId()))
		row("DER", hex.EncodeToString(r.GetDer()))
		row("Ethereum", "0x"+hex.EncodeToString(r.GetEthereum()))
	}
	return tw.Flush()
}

// countSet counts the non-empty values.
func countSet(values ...string) int {
	n := 0
	for _, v := range values {
		if v != "" {
			n++
		}
	}
	return n
}
