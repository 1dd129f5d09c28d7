package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/internal/sigiltest"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
)

func TestSignCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator and an HSM driver")
	}
	t.Cleanup(func() { _ = hsmtest.RemoveAll() })
	env := sigiltest.Start(t, sigiltest.Options{})
	vars := envOf(map[string]string{"SIGIL_API_URL": env.APIURL, "SIGIL_TOKEN": env.Token})
	client, err := sigil.New(env.APIURL, sigil.WithToken(env.Token))
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.CreateWalletAndWait(t.Context(), sigil.CreateWalletOptions{Backend: walletv1.Backend_BACKEND_HSM}, sigil.WaitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := w.GetAddresses().GetEthereum()

	// A message, human output: the Ethereum form recovers the address.
	r := sigilCLI(t, vars, "sign", "--wallet", w.GetId(), "--message", "hello from the CLI").ok(t)
	for _, want := range []string{"SIGNED", "EIP-191 message", `"hello from the CLI"`, "r  ", "s  ", "v  ", "DER", "Ethereum"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sign output lacks %q:\n%s", want, r.stdout)
		}
	}
	eth := field(t, r.stdout, "Ethereum")
	sig65, err := hex.DecodeString(strings.TrimPrefix(eth, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ethtest.VerifyPersonalSign([]byte("hello from the CLI"), sig65, addr); err != nil {
		t.Fatalf("VerifyPersonalSign: %v", err)
	}

	// A hash, --json: r and s, DER (OpenSSL) and ecrecover.
	hash := sha256.Sum256([]byte("tx"))
	r = sigilCLI(t, vars, "sign", "--wallet", w.GetId(), "--hash", "0x"+hex.EncodeToString(hash[:]), "--external-id", "tx-1", "--json").ok(t)
	var s walletv1.Signature
	if err := protojson.Unmarshal([]byte(r.stdout), &s); err != nil || s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
		t.Fatalf("sign --json: %v, %v\n%s", &s, err, r.stdout)
	}
	res := s.GetResult()
	if err := ethtest.VerifyHash(w.GetPublicKey(), hash[:], res.GetR(), res.GetS()); err != nil {
		t.Fatalf("VerifyHash: %v", err)
	}
	if got, err := ethtest.RecoverAddress(hash[:], res.GetEthereum()); err != nil || got != addr {
		t.Fatalf("RecoverAddress = %s, %v; want %s", got, err, addr)
	}
	ethtest.VerifyDER(t, w.GetPublicKey(), hash[:], res.GetDer())
	// The same external ID (hash without 0x this time) gives the same request.
	r = sigilCLI(t, vars, "sign", "--wallet", w.GetId(), "--hash", hex.EncodeToString(hash[:]), "--external-id", "tx-1").ok(t)
	if field(t, r.stdout, "Signature") != s.GetId() {
		t.Fatalf("repeated sign:\n%s", r.stdout)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no wallet", []string{"sign", "--message", "m"}, 2, "--wallet is required"},
		{"neither", []string{"sign", "--wallet", w.GetId()}, 2, "exactly one of --hash, --message and --raw-message"},
		{"both", []string{"sign", "--wallet", w.GetId(), "--message", "m", "--hash", hex.EncodeToString(hash[:])}, 2, "exactly one"},
		{"short hash", []string{"sign", "--wallet", w.GetId(), "--hash", "abcd"}, 2, "want 32 bytes"},
		{"not hex", []string{"sign", "--wallet", w.GetId(), "--hash", "xyz"}, 2, "not hex"},
		{"unknown flag", []string{"sign", "--wallet", w.GetId(), "--text", "m"}, 2, "flag provided but not defined"},
		{"unknown wallet", []string{"sign", "--wallet", "wal_" + strings.Repeat("0", 26), "--message", "m"}, 1, "(code not_found)"},
		{"reused external ID", []string{"sign", "--wallet", w.GetId(), "--message", "m", "--external-id", "tx-1"}, 1, "(code already_exists)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sigilCLI(t, vars, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
}

// field returns the value of a "Key  value" line of human output.
func field(t *testing.T, out, key string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "  "); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", key, out)
	return ""
}
