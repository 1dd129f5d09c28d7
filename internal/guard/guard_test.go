package guard_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
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
