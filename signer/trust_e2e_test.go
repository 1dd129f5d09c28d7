package signer_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/gate"
	"github.com/sigil-wallet/sigil/internal/guard"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/internal/journal"
	"github.com/sigil-wallet/sigil/internal/reqsig"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server/store"
)

// testGate is an operator's validation gate whose answer a test switches.
type testGate struct {
	srv    *httptest.Server
	secret []byte
	mode   atomic.Value // string
	mu     sync.Mutex
	seen   []gate.Request
	// release unblocks a "slow" answer when the test ends.
	release chan struct{}
}

func newTestGate(t *testing.T, secret []byte) *testGate {
	g := &testGate{secret: secret, release: make(chan struct{})}
	g.mode.Store("approve")
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(func() { close(g.release); g.srv.Close() })
	return g
}

func (g *testGate) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := gate.VerifyHeader(g.secret, r.Header.Get(gate.Header), body, time.Now(), time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req gate.Request
	_ = json.Unmarshal(body, &req)
	g.mu.Lock()
	g.seen = append(g.seen, req)
	g.mu.Unlock()
	switch g.mode.Load().(string) {
	case "approve":
		_, _ = io.WriteString(w, `{"approved": true}`)
	case "refuse":
		_, _ = io.WriteString(w, `{"approved": false, "reason": "amount over the daily limit"}`)
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
	case "redirect":
		http.Redirect(w, r, "/approve", http.StatusTemporaryRedirect)
	case "huge":
		_, _ = io.WriteString(w, `{"approved": true, "reason": "`+strings.Repeat("x", 1<<20)+`"}`)
	case "invalid-json":
		_, _ = io.WriteString(w, `{"approved": tru`)
	case "slow":
		select {
		case <-r.Context().Done():
		case <-g.release:
		}
	case "down":
		// The connection drops without an answer.
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		_ = conn.Close()
	}
}

func (g *testGate) requestsFor(signatureID string) []gate.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []gate.Request
	for _, r := range g.seen {
		if r.SignatureID == signatureID {
			out = append(out, r)
		}
	}
	return out
}

// trustSetup is a cluster whose signers and driver require requests signed
// by the "app" key and ask a gate.
type trustSetup struct {
	tc      *testCluster
	gate    *testGate
	appKey  *reqsig.PrivateKey // trusted by the signers and the driver
	sdkKey  *sigil.RequestKey  // the same key, as the Go SDK loads it
	rogue   *sigil.RequestKey  // valid signatures, trusted by nobody
	wallets map[string]*walletv1.Wallet
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTrustSetup(t *testing.T) *trustSetup {
	dir := t.TempDir()
	app, err := reqsig.GenerateKey(reqsig.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	appPEM, _ := app.MarshalPEM()
	sdkKey, err := sigil.LoadRequestKey(writeFile(t, filepath.Join(dir, "app.pem"), appPEM))
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := reqsig.GenerateKey(reqsig.ECDSAP256)
	roguePEM, _ := rogue.MarshalPEM()
	rogueKey, err := sigil.ParseRequestKey(roguePEM)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("gate-secret-0123456789abcdef0123")
	g := newTestGate(t, secret)
	tc := startClusterOpts(t, cluster.Options{
		Signers: 3, Threshold: 2, DeferSigners: true,
		HSM: &cluster.HSMOptions{ModulePath: cluster.SoftHSMModule},
		Policy: guard.Settings{
			TrustedRequestKeysFile: writeFile(t, filepath.Join(dir, "trusted"), []byte("app "+app.PublicText()+"\n")),
			RequireSignedRequests:  true,
			Gate:                   gate.Config{URL: g.srv.URL, SecretFile: writeFile(t, filepath.Join(dir, "gate-secret"), secret), Timeout: time.Second},
		},
	})
	s := &trustSetup{tc: tc, gate: g, appKey: app, sdkKey: sdkKey, rogue: rogueKey, wallets: map[string]*walletv1.Wallet{}}
	mpcID, _ := tc.seedWallet(t, 3, 2)
	for name, id := range map[string]string{"mpc": mpcID, "hsm": createHSMWallet(t, tc)} {
		res, err := tc.client.GetWallet(context.Background(), connect.NewRequest(&walletv1.GetWalletRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		s.wallets[name] = res.Msg.GetWallet()
	}
	return s
}

// request signs (with key, nil for none) and sends a request for a hash.
func (s *trustSetup) request(t *testing.T, backend string, hash []byte, key *sigil.RequestKey) *walletv1.Signature {
	t.Helper()
	req := &walletv1.CreateSignatureRequest{WalletId: s.wallets[backend].GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hash}}
	if key != nil {
		if err := key.Sign(req, "", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return s.tc.sign(t, req, 2*time.Minute)
}

// inject writes a signature request and its work straight into the
// coordinator's database, as an attacker owning it would: no API call, no
// token, no check by the coordinator.
func (s *trustSetup) inject(t *testing.T, backend string, sg *store.Signature) *walletv1.Signature {
	t.Helper()
	w := s.wallets[backend]
	sg.ID, sg.WalletID, sg.Status, sg.RequestHash = ids.New(ids.Signature), w.GetId(), store.SignaturePending, []byte{1}
	if sg.Kind == store.KindEIP191 {
		sg.Digest = address.EIP191Digest([]byte(sg.Message))
	} else {
		sg.Kind, sg.Digest = store.KindHash, sg.Hash
	}
	var work store.Work
	if backend == "mpc" {
		work.Ceremony = &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonySign, WalletID: w.GetId(), SignatureID: sg.ID,
			State: store.CeremonyWaiting, Threshold: 2, GroupSigners: s.tc.Names}
	} else {
		work.Job = &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: w.GetId(), SignatureID: sg.ID, State: store.JobQueued}
	}
	if _, _, err := s.tc.Server.Store().CreateSignature(context.Background(), sg, work); err != nil {
		t.Fatal(err)
	}
	return s.tc.waitSignature(t, sg.ID, 2*time.Minute)
}

// injectExcluding injects an MPC request whose ceremony leaves one signer
// out, so the quorum is the other two.
func (s *trustSetup) injectExcluding(t *testing.T, sg *store.Signature, left string) *walletv1.Signature {
	t.Helper()
	w := s.wallets["mpc"]
	sg.ID, sg.WalletID, sg.Status, sg.RequestHash, sg.Kind, sg.Digest = ids.New(ids.Signature), w.GetId(), store.SignaturePending, []byte{1}, store.KindHash, sg.Hash
	work := store.Work{Ceremony: &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonySign, WalletID: w.GetId(), SignatureID: sg.ID,
		State: store.CeremonyWaiting, Threshold: 2, GroupSigners: s.tc.Names, Excluded: []string{left}}}
	if _, _, err := s.tc.Server.Store().CreateSignature(context.Background(), sg, work); err != nil {
		t.Fatal(err)
	}
	return s.tc.waitSignature(t, sg.ID, 2*time.Minute)
}

// envelope is a signed request as the app key signs it.
func (s *trustSetup) envelope(t *testing.T, r *reqsig.Request) []byte {
	t.Helper()
	if r.RequestID == "" {
		r.RequestID = "req-" + ids.New(ids.Signature)
	}
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	if r.Kind == "" {
		r.Kind = reqsig.KindHash
	}
	sig, err := s.appKey.Sign(r)
	if err != nil {
		t.Fatal(err)
	}
	return r.Envelope(sig)
}

// journals returns every journal record about a signature, across the
// signers or the driver.
func (s *trustSetup) journals(t *testing.T, backend, signatureID string) []journal.Entry {
	t.Helper()
	var js []*journal.Journal
	if backend == "mpc" {
		for _, name := range s.tc.Names {
			js = append(js, s.tc.Signer(name).Journal())
		}
	} else {
		js = append(js, s.tc.Driver().Journal)
	}
	var out []journal.Entry
	for _, j := range js {
		entries, err := j.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.SignatureID == signatureID {
				out = append(out, e)
			}
		}
	}
	return out
}

// wantRefused checks a request ended REJECTED, unsigned, with a reason
// naming who refused and why, and that the refusal is journaled.
func (s *trustSetup) wantRefused(t *testing.T, backend string, sg *walletv1.Signature, decision journal.Decision, why string) {
	t.Helper()
	if sg.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_REJECTED || sg.GetResult() != nil {
		t.Fatalf("signature %v (%s), want REJECTED without a result", sg.GetStatus(), sg.GetFailureReason())
	}
	who := "signer-"
	if backend == "hsm" {
		who = "driver-1"
	}
	t.Logf("failure_reason: %s", sg.GetFailureReason())
	if !strings.Contains(sg.GetFailureReason(), who) || !strings.Contains(sg.GetFailureReason(), why) {
		t.Fatalf("failure_reason %q: want it to name %s and say %q", sg.GetFailureReason(), who, why)
	}
	s.wantJournaled(t, backend, sg.GetId(), decision)
}

func (s *trustSetup) wantJournaled(t *testing.T, backend, signatureID string, decision journal.Decision) {
	t.Helper()
	entries := s.journals(t, backend, signatureID)
	if len(entries) == 0 {
		t.Fatalf("no journal record for %s", signatureID)
	}
	for _, e := range entries {
		if e.Decision != decision {
			t.Fatalf("journal record %d for %s: %s (%s), want %s", e.Seq, signatureID, e.Decision, e.Reason, decision)
		}
	}
}

// TestSignersDecide runs, on both backends, the checks that make signers
// and drivers the place where authority lives: signed requests verified
// against their own trusted keys, the validation gate, and the journal.
func TestSignersDecide(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC signing ceremonies and a SoftHSM driver; skipped with -short")
	}
	if !cluster.SoftHSMAvailable() {
		t.Skip("SoftHSM2 not available; install it with `apt-get install softhsm2`")
	}
	s := newTrustSetup(t)
	for _, backend := range []string{"mpc", "hsm"} {
		t.Run(backend, func(t *testing.T) { s.run(t, backend) })
	}
	t.Run("journals verify", func(t *testing.T) {
		js := []*journal.Journal{s.tc.Driver().Journal}
		for _, name := range s.tc.Names {
			js = append(js, s.tc.Signer(name).Journal())
		}
		for _, j := range js {
			if n, b, err := j.Verify(context.Background()); err != nil || b != nil || n == 0 {
				t.Fatalf("journal: %d records, break %v, %v", n, b, err)
			}
		}
	})
}

func (s *trustSetup) run(t *testing.T, backend string) {
	w := s.wallets[backend]
	hash := func(tag string) []byte {
		h := sha256.Sum256([]byte(backend + " " + tag))
		return h[:]
	}
	t.Run("approved by the gate, signed with the SDK's request key", func(t *testing.T) {
		s.gate.mode.Store("approve")
		sg := s.request(t, backend, hash("approved"), s.sdkKey)
		verifySignature(t, w.GetPublicKey(), sg)
		if sg.GetRequesterKey() == "" || sg.GetRequestId() == "" {
			t.Errorf("signature shows request id %q, requester key %q", sg.GetRequestId(), sg.GetRequesterKey())
		}
		seen := s.gate.requestsFor(sg.GetId())
		if len(seen) == 0 {
			t.Fatal("the gate was not asked")
		}
		for _, r := range seen {
			if r.RequesterKey != "app" || !r.Signed || r.RequestID != sg.GetRequestId() || r.WalletID != w.GetId() ||
				r.Addresses.Ethereum != w.GetAddresses().GetEthereum() || r.Kind != "hash" || r.Signer == "" {
				t.Errorf("the gate was told %+v", r)
			}
		}
		s.wantJournaled(t, backend, sg.GetId(), journal.Signed)
	})
	t.Run("refused by the gate: REJECTED with its reason", func(t *testing.T) {
		s.gate.mode.Store("refuse")
		sg := s.request(t, backend, hash("refused"), s.sdkKey)
		s.wantRefused(t, backend, sg, journal.RefusedGate, "amount over the daily limit")
	})
	for _, mode := range []string{"500", "redirect", "huge", "invalid-json", "slow", "down"} {
		t.Run("gate "+mode+": no signature", func(t *testing.T) {
			s.gate.mode.Store(mode)
			sg := s.request(t, backend, hash("gate "+mode), s.sdkKey)
			if sg.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED || sg.GetResult() != nil {
				t.Fatalf("signature %v: %s", sg.GetStatus(), sg.GetFailureReason())
			}
			t.Logf("failure_reason: %s", sg.GetFailureReason())
			if !strings.Contains(sg.GetFailureReason(), "validation gate") {
				t.Errorf("failure_reason %q does not say the gate failed", sg.GetFailureReason())
			}
			s.wantJournaled(t, backend, sg.GetId(), journal.GateFailed)
		})
	}
	s.gate.mode.Store("approve")
	t.Run("still serving after the gate's faults", func(t *testing.T) {
		verifySignature(t, w.GetPublicKey(), s.request(t, backend, hash("after faults"), s.sdkKey))
	})
	t.Run("unsigned through the API: refused", func(t *testing.T) {
		sg := s.request(t, backend, hash("unsigned"), nil)
		s.wantRefused(t, backend, sg, journal.RefusedSignature, "not signed")
	})
	t.Run("signed by a key the coordinator accepts but the signers do not trust", func(t *testing.T) {
		sg := s.request(t, backend, hash("rogue"), s.rogue)
		if sg.GetRequesterKey() == "" {
			t.Error("the coordinator did not record the requester key")
		}
		s.wantRefused(t, backend, sg, journal.RefusedSignature, "does not trust")
	})
	t.Run("written straight into the coordinator's database", func(t *testing.T) {
		other := s.wallets[map[string]string{"mpc": "hsm", "hsm": "mpc"}[backend]].GetId()
		msg := "transfer everything"
		signed := s.envelope(t, &reqsig.Request{WalletID: w.GetId(), Digest: hash("legit")})
		cases := []struct {
			name string
			sg   *store.Signature
			why  string
		}{
			{"unsigned", &store.Signature{Hash: hash("forged")}, "not signed"},
			{"another wallet's request", &store.Signature{Hash: hash("x"), SignedRequest: s.envelope(t, &reqsig.Request{WalletID: other, Digest: hash("x")})}, "for wallet"},
			{"another digest", &store.Signature{Hash: hash("forged 2"), SignedRequest: signed}, "another digest"},
			{"another kind", &store.Signature{Hash: address.EIP191Digest([]byte(msg)),
				SignedRequest: s.envelope(t, &reqsig.Request{WalletID: w.GetId(), Kind: reqsig.KindEIP191, Digest: address.EIP191Digest([]byte(msg))})}, "for kind eip191"},
			{"expired", &store.Signature{Hash: hash("old"), SignedRequest: s.envelope(t, &reqsig.Request{WalletID: w.GetId(), Digest: hash("old"),
				Created: time.Now().Add(-reqsig.DefaultMaxAge - time.Minute)})}, "expired"},
			{"garbage", &store.Signature{Hash: hash("garbage"), SignedRequest: []byte("sigil/signature-request/v1\x00\x00\x00\x00\x07ed25519")}, "malformed"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				sg := s.inject(t, backend, c.sg)
				s.wantRefused(t, backend, sg, journal.RefusedSignature, c.why)
			})
		}
		if backend == "mpc" {
			t.Run("unsigned, refused by every signer", func(t *testing.T) {
				// The attacker also picks the quorum: three forged
				// requests, each leaving out another signer, reach every
				// signer twice; every one of them refuses and journals it.
				forged := map[string]bool{}
				for _, left := range s.tc.Names {
					sg := s.injectExcluding(t, &store.Signature{Hash: hash("forged without " + left)}, left)
					s.wantRefused(t, backend, sg, journal.RefusedSignature, "not signed")
					forged[sg.GetId()] = true
				}
				// The request is REJECTED at the first refusal; the other
				// party's refusal may be journaled a moment later.
				var refusals map[string]int
				deadline := time.Now().Add(15 * time.Second)
				for {
					refusals = map[string]int{}
					for _, name := range s.tc.Names {
						entries, err := s.tc.Signer(name).Journal().List(context.Background())
						if err != nil {
							t.Fatal(err)
						}
						for _, e := range entries {
							if forged[e.SignatureID] && e.Decision == journal.RefusedSignature {
								refusals[name]++
							}
						}
					}
					if len(refusals) == len(s.tc.Names) || time.Now().After(deadline) {
						break
					}
					time.Sleep(50 * time.Millisecond) // polling journals written by other goroutines
				}
				for _, name := range s.tc.Names {
					if refusals[name] == 0 {
						t.Errorf("%s never journaled a refusal: %v", name, refusals)
					}
				}
				t.Logf("refusals journaled per signer: %v", refusals)
			})
		}
		t.Run("replayed", func(t *testing.T) {
			env := s.envelope(t, &reqsig.Request{WalletID: w.GetId(), Digest: hash("once")})
			first := s.inject(t, backend, &store.Signature{Hash: hash("once"), SignedRequest: env})
			verifySignature(t, w.GetPublicKey(), first)
			again := s.inject(t, backend, &store.Signature{Hash: hash("once"), SignedRequest: env})
			s.wantRefused(t, backend, again, journal.RefusedSignature, "replayed")
		})
	})
	t.Run("the coordinator refuses bad signed requests early", func(t *testing.T) {
		signedAt := func(at time.Time) *walletv1.CreateSignatureRequest {
			req := &walletv1.CreateSignatureRequest{WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hash("early")}}
			if err := s.sdkKey.Sign(req, "", at); err != nil {
				t.Fatal(err)
			}
			return req
		}
		// The coordinator rebuilds the signed bytes from the request it
		// got: a field changed after signing breaks the signature.
		swapped := signedAt(time.Now())
		swapped.Payload = &walletv1.CreateSignatureRequest_Hash{Hash: hash("swapped")}
		flipped := signedAt(time.Now())
		flipped.RequestSignature.Signature[0] ^= 1
		for _, c := range []struct {
			name string
			req  *walletv1.CreateSignatureRequest
			want connect.Code
		}{
			{"hash swapped after signing", swapped, connect.CodePermissionDenied},
			{"signature altered", flipped, connect.CodePermissionDenied},
			{"expired", signedAt(time.Now().Add(-time.Hour)), connect.CodeInvalidArgument},
		} {
			_, err := s.tc.client.CreateSignature(context.Background(), connect.NewRequest(c.req))
			if connect.CodeOf(err) != c.want {
				t.Errorf("%s: %v, want %v", c.name, err, c.want)
			}
		}
	})
}
