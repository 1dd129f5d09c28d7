package sigiltest_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/internal/sigiltest"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server/auth"
)

// protocols are the wire protocols the API port serves; the end-to-end
// tests run over each.
var protocols = []struct {
	name string
	opt  sigil.Option
}{
	{"connect", nil},
	{"grpc", sigil.WithGRPC()},
	{"grpcweb", sigil.WithGRPCWeb()},
}

func newClient(t *testing.T, url, token string, opts ...sigil.Option) *sigil.Client {
	t.Helper()
	all := []sigil.Option{sigil.WithToken(token)}
	for _, o := range opts {
		if o != nil {
			all = append(all, o)
		}
	}
	c, err := sigil.New(url, all...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMain(m *testing.M) {
	code := m.Run()
	_ = hsmtest.RemoveAll()
	os.Exit(code)
}

// TestEndToEnd creates a wallet and signs with it through a real
// coordinator and HSM driver, in each protocol, and checks every signature
// with implementations that share no code with Sigil: go-ethereum
// (libsecp256k1) for r, s and the 65-byte form, OpenSSL for DER.
func TestEndToEnd(t *testing.T) {
	env := sigiltest.Start(t, sigiltest.Options{})
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ctx := t.Context()
			client := newClient(t, env.APIURL, env.Token, proto.opt)

			var seen []walletv1.WalletStatus
			w, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: "treasury " + proto.name, Backend: walletv1.Backend_BACKEND_HSM},
				sigil.WaitOptions{PollInterval: 20 * time.Millisecond, Progress: func(w *walletv1.Wallet, elapsed time.Duration) {
					if elapsed < 0 {
						t.Errorf("negative elapsed %v", elapsed)
					}
					seen = append(seen, w.GetStatus())
				}})
			if err != nil {
				t.Fatal(err)
			}
			if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE || len(w.GetPublicKey()) != 33 ||
				!strings.HasPrefix(w.GetAddresses().GetEthereum(), "0x") || !strings.HasPrefix(w.GetAddresses().GetBitcoinP2Wpkh(), "bc1q") {
				t.Fatalf("wallet = %v", w)
			}
			if len(seen) == 0 || seen[0] != walletv1.WalletStatus_WALLET_STATUS_CREATING || seen[len(seen)-1] != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
				t.Fatalf("progress saw %v; want CREATING first and ACTIVE last", seen)
			}
			got, err := client.GetWallet(ctx, w.GetId())
			if err != nil || got.GetId() != w.GetId() || string(got.GetPublicKey()) != string(w.GetPublicKey()) {
				t.Fatalf("GetWallet = %v, %v", got, err)
			}
			// WaitWallet on an ACTIVE wallet returns at once.
			if again, err := client.WaitWallet(ctx, w.GetId(), sigil.WaitOptions{}); err != nil || again.GetId() != w.GetId() {
				t.Fatalf("WaitWallet = %v, %v", again, err)
			}

			hash := sha256.Sum256([]byte("pay 1 BTC to " + proto.name))
			sg, err := client.SignHash(ctx, w.GetId(), hash[:], sigil.SignOptions{Wait: sigil.SignatureWaitOptions{PollInterval: 20 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			res := sg.GetResult()
			if sg.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED || sg.GetWalletId() != w.GetId() {
				t.Fatalf("signature = %v", sg)
			}
			if err := ethtest.VerifyHash(w.GetPublicKey(), hash[:], res.GetR(), res.GetS()); err != nil {
				t.Fatalf("go-ethereum VerifyHash: %v", err)
			}
			if addr, err := ethtest.RecoverAddress(hash[:], res.GetEthereum()); err != nil || addr != w.GetAddresses().GetEthereum() {
				t.Fatalf("ecrecover = %s, %v; want %s", addr, err, w.GetAddresses().GetEthereum())
			}
			ethtest.VerifyDER(t, w.GetPublicKey(), hash[:], res.GetDer())

			msg := "Sign in to example.com, nonce " + proto.name
			ms, err := client.SignMessage(ctx, w.GetId(), msg, sigil.SignOptions{ExternalID: "login-" + proto.name})
			if err != nil {
				t.Fatal(err)
			}
			if err := ethtest.VerifyPersonalSign([]byte(msg), ms.GetResult().GetEthereum(), w.GetAddresses().GetEthereum()); err != nil {
				t.Fatalf("go-ethereum VerifyPersonalSign: %v", err)
			}
			ethtest.VerifyDER(t, w.GetPublicKey(), ms.GetDigest(), ms.GetResult().GetDer())

			// The same external ID returns the same request, signed.
			again, err := client.SignMessage(ctx, w.GetId(), msg, sigil.SignOptions{ExternalID: "login-" + proto.name})
			if err != nil || again.GetId() != ms.GetId() {
				t.Fatalf("repeated SignMessage = %v, %v; want %s", again, err, ms.GetId())
			}
			// ... and with another message, AlreadyExists.
			if _, err := client.SignMessage(ctx, w.GetId(), msg+"!", sigil.SignOptions{ExternalID: "login-" + proto.name}); !sigil.IsAlreadyExists(err) {
				t.Fatalf("reused external ID: %v, want AlreadyExists", err)
			}

			// CreateSignature + WaitSignature, and GetSignature.
			pending, err := client.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: w.GetId(), Hash: hash[:]})
			if err != nil {
				t.Fatal(err)
			}
			waited, err := client.WaitSignature(ctx, pending.GetId(), sigil.SignatureWaitOptions{})
			if err != nil || waited.GetResult() == nil {
				t.Fatalf("WaitSignature = %v, %v", waited, err)
			}
			if fetched, err := client.GetSignature(ctx, pending.GetId()); err != nil || fetched.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
				t.Fatalf("GetSignature = %v, %v", fetched, err)
			}

			// The wallet's signatures, oldest first.
			var ids []string
			for s, err := range client.Signatures(ctx, sigil.ListSignaturesOptions{WalletID: w.GetId(), PageSize: 2}) {
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, s.GetId())
			}
			if want := []string{sg.GetId(), ms.GetId(), pending.GetId()}; fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Fatalf("Signatures = %v, want %v", ids, want)
			}
		})
	}
}

// TestListsAndErrors runs without a driver: wallets stay CREATING, which
// is what pagination, waits and precondition errors need.
func TestListsAndErrors(t *testing.T) {
	env := sigiltest.Start(t, sigiltest.Options{NoDriver: true})
	ctx := t.Context()
	client := newClient(t, env.APIURL, env.Token)

	var created []string
	for i := range 7 {
		w, err := client.CreateWallet(ctx, sigil.CreateWalletOptions{Name: fmt.Sprint("w", i), ExternalID: fmt.Sprint("ext-", i)})
		if err != nil {
			t.Fatal(err)
		}
		if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_CREATING || w.GetBackend() != walletv1.Backend_BACKEND_HSM {
			t.Fatalf("wallet = %v", w)
		}
		created = append(created, w.GetId())
	}
	first := created[0]

	t.Run("pagination", func(t *testing.T) {
		for _, size := range []int32{0, 1, 3, 7, 1000} {
			var ids []string
			for w, err := range client.Wallets(ctx, sigil.ListOptions{PageSize: size}) {
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, w.GetId())
			}
			if fmt.Sprint(ids) != fmt.Sprint(created) {
				t.Fatalf("page size %d: Wallets = %v, want %v", size, ids, created)
			}
		}
		// Breaking out of the loop stops fetching.
		n := 0
		for _, err := range client.Wallets(ctx, sigil.ListOptions{PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 3 {
				break
			}
		}
		// A status filter.
		for w, err := range client.Wallets(ctx, sigil.ListOptions{Status: walletv1.WalletStatus_WALLET_STATUS_ACTIVE}) {
			t.Fatalf("no wallet is ACTIVE, got %v, %v", w, err)
		}
		// Resuming from a page token.
		page, err := client.Service().ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{PageSize: 4}))
		if err != nil {
			t.Fatal(err)
		}
		var rest []string
		for w, err := range client.Wallets(ctx, sigil.ListOptions{PageToken: page.Msg.GetNextPageToken(), PageSize: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			rest = append(rest, w.GetId())
		}
		if fmt.Sprint(rest) != fmt.Sprint(created[4:]) {
			t.Fatalf("resumed = %v, want %v", rest, created[4:])
		}
		// An error is yielded once and ends the loop.
		var errs int
		for w, err := range client.Wallets(ctx, sigil.ListOptions{PageToken: "garbage"}) {
			if err == nil || w != nil {
				t.Fatalf("bad page token: %v, %v", w, err)
			}
			errs++
		}
		if errs != 1 {
			t.Fatalf("%d errors yielded, want 1", errs)
		}
	})

	readOnly := newClient(t, env.APIURL, env.MintToken(t, auth.ScopeWalletsRead))
	for _, tc := range []struct {
		name string
		call func() error
		is   func(error) bool
		// reason is what the server attaches; unspecified for errors the
		// SDK raises before calling it.
		reason walletv1.ErrorReason
	}{
		{"unknown token is Unauthenticated", func() error {
			_, err := newClient(t, env.APIURL, "sgl_not-a-token").GetWallet(ctx, first)
			return err
		}, sigil.IsUnauthenticated, walletv1.ErrorReason_ERROR_REASON_UNAUTHENTICATED},
		{"missing scope is PermissionDenied", func() error {
			_, err := readOnly.CreateWallet(ctx, sigil.CreateWalletOptions{})
			return err
		}, sigil.IsPermissionDenied, walletv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED},
		{"unknown wallet is NotFound", func() error {
			_, err := client.GetWallet(ctx, "wal_"+strings.Repeat("0", 26))
			return err
		}, sigil.IsNotFound, walletv1.ErrorReason_ERROR_REASON_NOT_FOUND},
		{"unknown signature is NotFound", func() error {
			_, err := client.GetSignature(ctx, "sig_"+strings.Repeat("0", 26))
			return err
		}, sigil.IsNotFound, walletv1.ErrorReason_ERROR_REASON_NOT_FOUND},
		{"malformed id is InvalidArgument", func() error {
			_, err := client.GetWallet(ctx, "nope")
			return err
		}, sigil.IsInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT},
		{"short hash is InvalidArgument", func() error {
			_, err := client.SignHash(ctx, first, []byte("short"), sigil.SignOptions{})
			return err
		}, sigil.IsInvalidArgument, walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
		{"nil hash is InvalidArgument", func() error {
			_, err := client.SignHash(ctx, first, nil, sigil.SignOptions{})
			return err
		}, sigil.IsInvalidArgument, walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
		{"empty message is InvalidArgument", func() error {
			_, err := client.SignMessage(ctx, first, "", sigil.SignOptions{})
			return err
		}, sigil.IsInvalidArgument, walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
		{"hash and message is InvalidArgument", func() error {
			_, err := client.CreateSignature(ctx, sigil.CreateSignatureOptions{WalletID: first, Hash: make([]byte, 32), Message: "m"})
			return err
		}, sigil.IsInvalidArgument, walletv1.ErrorReason_ERROR_REASON_UNSPECIFIED},
		{"long name is InvalidArgument (server side)", func() error {
			_, err := client.CreateWallet(ctx, sigil.CreateWalletOptions{Name: strings.Repeat("n", 201)})
			return err
		}, sigil.IsInvalidArgument, walletv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT},
		{"signing with a CREATING wallet is FailedPrecondition", func() error {
			_, err := client.SignMessage(ctx, first, "hello", sigil.SignOptions{})
			return err
		}, sigil.IsFailedPrecondition, walletv1.ErrorReason_ERROR_REASON_WALLET_NOT_ACTIVE},
		{"reused external ID is AlreadyExists", func() error {
			_, err := client.CreateWallet(ctx, sigil.CreateWalletOptions{Name: "other", ExternalID: "ext-0"})
			return err
		}, sigil.IsAlreadyExists, walletv1.ErrorReason_ERROR_REASON_IDEMPOTENCY_CONFLICT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !tc.is(err) {
				t.Fatalf("err = %v", err)
			}
			if got := sigil.Reason(err); got != tc.reason {
				t.Fatalf("Reason(%v) = %v, want %v", err, got, tc.reason)
			}
			if err.Error() == "" {
				t.Fatal("empty message")
			}
		})
	}
	// Each helper is true for its code only.
	if err := func() error { _, err := client.GetWallet(ctx, "nope"); return err }(); sigil.IsNotFound(err) || sigil.IsUnauthenticated(err) || sigil.IsNotFound(nil) {
		t.Fatalf("helpers confuse codes: %v", err)
	}
	// The same external ID and request returns the same wallet.
	if w, err := client.CreateWallet(ctx, sigil.CreateWalletOptions{Name: "w0", ExternalID: "ext-0"}); err != nil || w.GetId() != first {
		t.Fatalf("repeated CreateWallet = %v, %v", w, err)
	}

	t.Run("wait canceled by the context", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, cancel)
		reads := 0
		start := time.Now()
		// The first read answers at once; the server holds the second (the
		// wallet never leaves CREATING here) until the cancel ends it.
		w, err := client.WaitWallet(wctx, first, sigil.WaitOptions{PollInterval: 20 * time.Millisecond, Progress: func(*walletv1.Wallet, time.Duration) { reads++ }})
		if w != nil || !sigil.IsCanceled(err) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still CREATING") {
			t.Fatalf("WaitWallet = %v, %v; want Canceled", w, err)
		}
		if d := time.Since(start); d > 5*time.Second || reads != 1 {
			t.Fatalf("returned after %v and %d reads: the reads were not held", d, reads)
		}
	})
	t.Run("wait with its own timeout", func(t *testing.T) {
		_, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{}, sigil.WaitOptions{Timeout: 200 * time.Millisecond})
		if !sigil.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), "gave up after 200ms") {
			t.Fatalf("err = %v; want DeadlineExceeded", err)
		}
	})
	t.Run("wait until the context deadline", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := client.WaitWallet(dctx, first, sigil.WaitOptions{})
		if !sigil.IsDeadlineExceeded(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v; want DeadlineExceeded", err)
		}
	})
	t.Run("wait for an unknown wallet", func(t *testing.T) {
		_, err := client.WaitWallet(ctx, "wal_"+strings.Repeat("1", 26), sigil.WaitOptions{})
		if !sigil.IsNotFound(err) {
			t.Fatalf("err = %v; want NotFound", err)
		}
	})
}
