package guard_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/gate"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/journal"
	"github.com/sigil-wallet/sigil/internal/reqsig"
)

func TestAuthorize(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		ctx := context.Background()
		j, err := journal.Open(ctx, open(t))
		if err != nil {
			t.Fatal(err)
		}
		key, _ := reqsig.GenerateKey(reqsig.Ed25519)
		trusted, _ := reqsig.NewTrusted(reqsig.TrustedKey{Name: "app", Algorithm: key.Algorithm, PublicKey: key.PublicKey()})
		g := guard.New(guard.Config{Node: "signer-1", Policy: reqsig.Policy{Trusted: trusted}, Journal: j})
		digest := sha256.Sum256([]byte("pay"))
		r := &reqsig.Request{RequestID: "r1", Created: time.Now(), WalletID: "wal_1", Kind: reqsig.KindHash, Digest: digest[:]}
		sig, _ := key.Sign(r)
		req := func(sigID, workID string) *guard.Request {
			return &guard.Request{WorkID: workID, SignatureID: sigID, WalletID: "wal_1", Kind: walletv1.SignatureKind_SIGNATURE_KIND_HASH,
				Payload: digest[:], Digest: digest[:], SignedRequest: r.Envelope(sig)}
		}
		if err := g.Authorize(ctx, req("sig_1", "cer_1")); err != nil {
			t.Fatal(err)
		}
		// The coordinator retries the same signature request with another
		// quorum: a new ceremony, the same request. Not a replay.
		if err := g.Authorize(ctx, req("sig_1", "cer_2")); err != nil {
			t.Fatalf("retry with another quorum refused: %v", err)
		}
		// The same signed request for another signature request: a replay.
		var refusal *guard.Refusal
		if err := g.Authorize(ctx, req("sig_2", "cer_3")); !errors.As(err, &refusal) || refusal.Decision != journal.RefusedSignature {
			t.Fatalf("replay: %v", err)
		}
		// A digest that is not the payload's.
		bad := req("sig_3", "cer_4")
		bad.Payload = make([]byte, 32)
		if err := g.Authorize(ctx, bad); !errors.As(err, &refusal) || refusal.Decision != journal.RefusedPolicy {
			t.Fatalf("digest mismatch: %v", err)
		}
		entries, err := j.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []journal.Decision
		for _, e := range entries {
			got = append(got, e.Decision)
			if e.Node != "signer-1" || e.WalletID != "wal_1" {
				t.Errorf("record %+v", e)
			}
		}
		want := []journal.Decision{journal.Signed, journal.Signed, journal.RefusedSignature, journal.RefusedPolicy}
		if len(got) != len(want) {
			t.Fatalf("journal %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("journal %v, want %v", got, want)
			}
		}
		if entries[0].RequesterKey != "app" || entries[0].RequestID != "r1" {
			t.Errorf("first record %+v", entries[0])
		}
	})
}

// A raw message (Ed25519) is signed as it is: the signed request binds the
// message's SHA-256, which the node computes itself from the payload, so a
// request for one message does not authorise another.
func TestAuthorizeRawMessage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		ctx := context.Background()
		j, err := journal.Open(ctx, open(t))
		if err != nil {
			t.Fatal(err)
		}
		key, _ := reqsig.GenerateKey(reqsig.ECDSAP256)
		trusted, _ := reqsig.NewTrusted(reqsig.TrustedKey{Name: "app", Algorithm: key.Algorithm, PublicKey: key.PublicKey()})
		g := guard.New(guard.Config{Node: "signer-1", Policy: reqsig.Policy{Trusted: trusted, Require: true}, Journal: j})
		msg := []byte("a Solana transaction message \x00\x01")
		r := &reqsig.Request{RequestID: "r1", Created: time.Now(), WalletID: "wal_1", Kind: reqsig.KindRaw, Digest: reqsig.RawDigest(msg)}
		sig, _ := key.Sign(r)
		req := func(sigID string, payload []byte) *guard.Request {
			return &guard.Request{WorkID: "cer_" + sigID, SignatureID: sigID, WalletID: "wal_1",
				Kind: walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE, Payload: payload, SignedRequest: r.Envelope(sig)}
		}
		if err := g.Authorize(ctx, req("sig_1", msg)); err != nil {
			t.Fatalf("the signed raw message: %v", err)
		}
		var refusal *guard.Refusal
		if err := g.Authorize(ctx, req("sig_2", []byte("another message"))); !errors.As(err, &refusal) || refusal.Decision != journal.RefusedSignature {
			t.Fatalf("another message under the same request signature: %v", err)
		}
	})
}

// The gate is told the addresses of the wallet's own scheme: a Taproot
// address for a Schnorr key, a Solana address for an Ed25519 key.
func TestGateSeesTheSchemesAddresses(t *testing.T) {
	bodies := make(chan map[string]any, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		bodies <- body
		_, _ = w.Write([]byte(`{"approved": true}`))
	}))
	defer srv.Close()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	gc, err := gate.New(gate.Config{URL: srv.URL, SecretFile: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, dbtest.Open(t, db.SQLite))
	if err != nil {
		t.Fatal(err)
	}
	g := guard.New(guard.Config{Node: "signer-1", Gate: gc, Journal: j})
	edPub, _, _ := ed25519.GenerateKey(nil)
	xOnly := mustHex(t, "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798") // G's x coordinate
	digest := sha256.Sum256([]byte("x"))
	for _, tc := range []struct{ scheme, field, want string }{
		{"ed25519", "solana", mustAddr(address.Solana(edPub))},
		{"schnorr-secp256k1", "bitcoin_p2tr", mustAddr(address.BitcoinP2TR(xOnly, "bc"))},
	} {
		r := &guard.Request{WorkID: "cer_" + tc.scheme, SignatureID: "sig_" + tc.scheme, WalletID: "wal_1", KeyScheme: tc.scheme,
			Kind: walletv1.SignatureKind_SIGNATURE_KIND_HASH, Payload: digest[:], Digest: digest[:], PublicKey: xOnly}
		if tc.scheme == "ed25519" {
			r.PublicKey, r.Kind, r.Payload, r.Digest = edPub, walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE, []byte("msg"), nil
		}
		if err := g.Authorize(ctx, r); err != nil {
			t.Fatalf("%s: %v", tc.scheme, err)
		}
		addrs, _ := (<-bodies)["addresses"].(map[string]any)
		if got, _ := addrs[tc.field].(string); got != tc.want || tc.want == "" {
			t.Fatalf("%s: the gate saw addresses %v, want %s %s", tc.scheme, addrs, tc.field, tc.want)
		}
	}
}

func mustAddr(a string, err error) string {
	if err != nil {
		panic(err)
	}
	return a
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
