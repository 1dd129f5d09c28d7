package seal_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/seal"
)

const ceremony = "ceremony-1"

// world is three signers a, b, c issued by one CA, each with a session for
// the same ceremony that knows the other two.
type world struct {
	ca       *seal.TestCA
	certs    map[string]tls.Certificate
	ids      map[string]*seal.Identity
	peers    map[string]*seal.Peer
	sessions map[string]*seal.Session
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{
		ca:       seal.NewTestCA(t, "signer CA"),
		certs:    map[string]tls.Certificate{},
		ids:      map[string]*seal.Identity{},
		peers:    map[string]*seal.Peer{},
		sessions: map[string]*seal.Session{},
	}
	for _, name := range []string{"a", "b", "c"} {
		w.certs[name] = w.ca.Issue(t, name, seal.CertOptions{})
		id, err := seal.NewIdentity(w.certs[name])
		if err != nil {
			t.Fatal(err)
		}
		w.ids[name] = id
		p, err := seal.VerifyAnnouncement(id.Announcement(), w.ca.Pool(), time.Now())
		if err != nil {
			t.Fatalf("verify %s: %v", name, err)
		}
		w.peers[name] = p
	}
	for name := range w.ids {
		w.sessions[name] = w.session(t, name, ceremony)
	}
	return w
}

func (w *world) session(t testing.TB, self, cer string) *seal.Session {
	t.Helper()
	s, err := seal.NewSession(w.ids[self], cer, w.peers)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *world) seal(t testing.TB, from, to string, round uint32, payload []byte) []byte {
	t.Helper()
	env, err := w.sessions[from].Seal(to, round, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestRoundTrip(t *testing.T) {
	w := newWorld(t)
	for i, payload := range [][]byte{{}, []byte("hello"), bytes.Repeat([]byte{7}, 100_000)} {
		env := w.seal(t, "a", "b", uint32(i+1), payload)
		h, got, err := w.sessions["b"].Open("a", env)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("payload mismatch")
		}
		want := seal.Header{Ceremony: ceremony, Sender: "a", Recipient: "b", Round: uint32(i + 1), Seq: uint64(i + 1)}
		if h != want {
			t.Fatalf("header = %+v, want %+v", h, want)
		}
		if peek, err := seal.PeekHeader(env); err != nil || peek != want {
			t.Fatalf("PeekHeader = %+v, %v", peek, err)
		}
	}
	// Sequence numbers are per recipient.
	env := w.seal(t, "a", "c", 1, nil)
	if h, _, err := w.sessions["c"].Open("a", env); err != nil || h.Seq != 1 {
		t.Fatalf("a->c: seq %d, %v", h.Seq, err)
	}
}

// headerOffsets locates fields in an envelope whose ceremony, sender and
// recipient have the given lengths: magic(3) + three length-prefixed ids.
func roundOffset(cer, sender, recipient string) int {
	return 3 + 1 + len(cer) + 1 + len(sender) + 1 + len(recipient)
}

func TestOpenRejects(t *testing.T) {
	w := newWorld(t)
	other := seal.NewTestCA(t, "other CA")

	// b restarted: same certificate, new HPKE key; envelopes sealed to the
	// old process are validly signed but cannot be decrypted.
	bNew, err := seal.NewIdentity(w.certs["b"])
	if err != nil {
		t.Fatal(err)
	}

	// An impostor "a" certified by another CA, whose session somehow knows
	// the real peers (the relay served it their announcements).
	evilA, err := seal.NewIdentity(other.Issue(t, "a", seal.CertOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	evilSession, err := seal.NewSession(evilA, ceremony, w.peers)
	if err != nil {
		t.Fatal(err)
	}

	flip := func(env []byte, i int) []byte {
		out := bytes.Clone(env)
		out[i] ^= 0x01
		return out
	}
	ro := roundOffset(ceremony, "a", "b")

	tests := []struct {
		name    string
		opener  func(t *testing.T) *seal.Session
		from    string
		env     func(t *testing.T) []byte
		wantErr error
	}{
		{
			name: "tampered ciphertext",
			from: "a",
			env: func(t *testing.T) []byte {
				env := w.seal(t, "a", "b", 1, []byte("payload"))
				return flip(env, len(env)-80) // inside the ciphertext, before the signature
			},
			wantErr: seal.ErrBadSignature,
		},
		{
			name: "tampered round",
			from: "a",
			env: func(t *testing.T) []byte {
				return flip(w.seal(t, "a", "b", 1, []byte("payload")), ro+3)
			},
			wantErr: seal.ErrBadSignature,
		},
		{
			name: "tampered seq",
			from: "a",
			env: func(t *testing.T) []byte {
				return flip(w.seal(t, "a", "b", 1, []byte("payload")), ro+4+7)
			},
			wantErr: seal.ErrBadSignature,
		},
		{
			name:   "tampered recipient, delivered to new recipient",
			opener: func(*testing.T) *seal.Session { return w.sessions["c"] },
			from:   "a",
			env: func(t *testing.T) []byte {
				env := w.seal(t, "a", "b", 1, []byte("payload"))
				env[ro-1] = 'c' // recipient "b" -> "c"
				return env
			},
			wantErr: seal.ErrBadSignature,
		},
		{
			name: "tampered ceremony, delivered to that ceremony",
			opener: func(t *testing.T) *seal.Session {
				return w.session(t, "b", "ceremony-2")
			},
			from: "a",
			env: func(t *testing.T) []byte {
				env := w.seal(t, "a", "b", 1, []byte("payload"))
				env[3+len(ceremony)] = '2' // "ceremony-1" -> "ceremony-2"
				return env
			},
			wantErr: seal.ErrBadSignature,
		},
		{
			name: "envelope of another ceremony",
			opener: func(t *testing.T) *seal.Session {
				return w.session(t, "b", "ceremony-2")
			},
			from:    "a",
			env:     func(t *testing.T) []byte { return w.seal(t, "a", "b", 1, nil) },
			wantErr: seal.ErrWrongCeremony,
		},
		{
			name:    "wrong recipient",
			opener:  func(*testing.T) *seal.Session { return w.sessions["c"] },
			from:    "a",
			env:     func(t *testing.T) []byte { return w.seal(t, "a", "b", 1, nil) },
			wantErr: seal.ErrNotForMe,
		},
		{
			name:    "sender mismatch",
			from:    "c",
			env:     func(t *testing.T) []byte { return w.seal(t, "a", "b", 1, nil) },
			wantErr: seal.ErrSenderMismatch,
		},
		{
			name: "unknown sender",
			opener: func(t *testing.T) *seal.Session {
				s, err := seal.NewSession(w.ids["b"], ceremony, map[string]*seal.Peer{"c": w.peers["c"]})
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			from:    "a",
			env:     func(t *testing.T) []byte { return w.seal(t, "a", "b", 1, nil) },
			wantErr: seal.ErrUnknownSender,
		},
		{
			name: "signed by a certificate of another CA",
			from: "a",
			env: func(t *testing.T) []byte {
				env, err := evilSession.Seal("b", 1, []byte("payload"))
				if err != nil {
					t.Fatal(err)
				}
				return env
			},
			wantErr: seal.ErrBadSignature,
		},
		{
			name: "re-signed by another peer as its own",
			from: "c",
			env: func(t *testing.T) []byte {
				// c takes a's envelope to b and claims it: changing the
				// sender breaks the HPKE binding even with a valid signature.
				env := w.seal(t, "a", "b", 1, []byte("secret"))
				env[3+1+len(ceremony)+1] = 'c'
				return seal.ResignEnvelope(t, env, w.certs["c"].PrivateKey.(crypto.Signer))
			},
			wantErr: seal.ErrDecrypt,
		},
		{
			name:    "sealed to a previous process of the recipient",
			opener:  func(t *testing.T) *seal.Session { return mustSession(t, bNew, w.peers) },
			from:    "a",
			env:     func(t *testing.T) []byte { return w.seal(t, "a", "b", 1, nil) },
			wantErr: seal.ErrDecrypt,
		},
		{
			name:    "truncated",
			from:    "a",
			env:     func(t *testing.T) []byte { env := w.seal(t, "a", "b", 1, nil); return env[:len(env)-1] },
			wantErr: seal.ErrMalformed,
		},
		{
			name:    "trailing byte",
			from:    "a",
			env:     func(t *testing.T) []byte { return append(w.seal(t, "a", "b", 1, nil), 0) },
			wantErr: seal.ErrMalformed,
		},
		{
			name:    "announcement instead of envelope",
			from:    "a",
			env:     func(*testing.T) []byte { return w.ids["a"].Announcement() },
			wantErr: seal.ErrMalformed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := w.sessions["b"]
			if tc.opener != nil {
				s = tc.opener(t)
			}
			_, payload, err := s.Open(tc.from, tc.env(t))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			if payload != nil {
				t.Fatal("payload returned with an error")
			}
		})
	}
}

func mustSession(t *testing.T, id *seal.Identity, peers map[string]*seal.Peer) *seal.Session {
	t.Helper()
	s, err := seal.NewSession(id, ceremony, peers)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReplay(t *testing.T) {
	w := newWorld(t)
	b := w.sessions["b"]
	var envs [][]byte
	for i := range 5 {
		envs = append(envs, w.seal(t, "a", "b", uint32(i), []byte{byte(i)}))
	}
	// Out of order is fine once; a second delivery is a replay.
	for _, i := range []int{2, 0, 4, 1, 3} {
		if _, _, err := b.Open("a", envs[i]); err != nil {
			t.Fatalf("first open of %d: %v", i, err)
		}
	}
	for i := range envs {
		if _, _, err := b.Open("a", envs[i]); !errors.Is(err, seal.ErrReplay) {
			t.Fatalf("second open of %d: %v, want ErrReplay", i, err)
		}
	}
}

func TestSealRejects(t *testing.T) {
	w := newWorld(t)
	s := w.sessions["a"]
	if _, err := s.Seal("a", 1, nil); !errors.Is(err, seal.ErrUnknownRecipient) {
		t.Errorf("seal to self: %v", err)
	}
	if _, err := s.Seal("zed", 1, nil); !errors.Is(err, seal.ErrUnknownRecipient) {
		t.Errorf("seal to stranger: %v", err)
	}
	if _, err := s.Seal("b", 1, make([]byte, seal.MaxPayloadSize+1)); !errors.Is(err, seal.ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	for _, cer := range []string{"", "has space", string(make([]byte, seal.MaxCeremonyIDLen+1))} {
		if _, err := seal.NewSession(w.ids["a"], cer, w.peers); !errors.Is(err, seal.ErrInvalidArgument) {
			t.Errorf("ceremony %q: %v", cer, err)
		}
	}
	if _, err := seal.NewSession(w.ids["a"], ceremony, map[string]*seal.Peer{"x": w.peers["b"]}); !errors.Is(err, seal.ErrInvalidArgument) {
		t.Errorf("peer under wrong name: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	w := newWorld(t)
	const perSender = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*perSender)
	for _, from := range []string{"a", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := range perSender {
				inner.Add(1)
				go func() {
					defer inner.Done()
					env, err := w.sessions[from].Seal("b", 1, []byte(fmt.Sprint(i)))
					if err == nil {
						_, _, err = w.sessions["b"].Open(from, env)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestVerifyAnnouncement(t *testing.T) {
	ca := seal.NewTestCA(t, "signer CA")
	other := seal.NewTestCA(t, "other CA")
	now := time.Now()
	ann := func(t *testing.T, ca *seal.TestCA, cn string, opt seal.CertOptions) []byte {
		id, err := seal.NewIdentity(ca.Issue(t, cn, opt))
		if err != nil {
			t.Fatal(err)
		}
		return id.Announcement()
	}
	good := ann(t, ca, "signer-1", seal.CertOptions{})

	tests := []struct {
		name    string
		ann     []byte
		roots   *x509.CertPool
		now     time.Time
		wantErr error
	}{
		{"valid", good, ca.Pool(), now, nil},
		{"other CA", ann(t, other, "signer-1", seal.CertOptions{}), ca.Pool(), now, seal.ErrUntrusted},
		{"no roots", good, nil, now, seal.ErrUntrusted},
		{"server-auth certificate", ann(t, ca, "signer-1", seal.CertOptions{EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), ca.Pool(), now, seal.ErrUntrusted},
		{"expired", good, ca.Pool(), now.Add(seal.AnnouncementTTL + time.Minute), seal.ErrExpired},
		{"not yet valid", good, ca.Pool(), now.Add(-time.Hour), seal.ErrExpired},
		{"tampered HPKE key", flipAt(good, 3+1+len("signer-1")+2), ca.Pool(), now, seal.ErrBadSignature},
		{"tampered signature", flipAt(good, len(good)-3), ca.Pool(), now, seal.ErrBadSignature},
		{"trailing byte", append(bytes.Clone(good), 0), ca.Pool(), now, seal.ErrMalformed},
		{"truncated", good[:len(good)-1], ca.Pool(), now, seal.ErrMalformed},
		{"empty", nil, ca.Pool(), now, seal.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := seal.VerifyAnnouncement(tc.ann, tc.roots, tc.now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && p.Name != "signer-1" {
				t.Fatalf("name = %q", p.Name)
			}
		})
	}
}

func TestNewIdentityRejects(t *testing.T) {
	ca := seal.NewTestCA(t, "signer CA")
	good := ca.Issue(t, "signer-1", seal.CertOptions{})
	mismatched := good
	mismatched.PrivateKey = ca.Issue(t, "signer-1", seal.CertOptions{}).PrivateKey
	tests := map[string]tls.Certificate{
		"no OU signer":   ca.Issue(t, "signer-1", seal.CertOptions{OUs: []string{"driver"}}),
		"bad name":       ca.Issue(t, "signer 1", seal.CertOptions{}),
		"long name":      ca.Issue(t, string(bytes.Repeat([]byte("x"), seal.MaxNameLen+1)), seal.CertOptions{}),
		"key mismatch":   mismatched,
		"no certificate": {},
	}
	for name, cert := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := seal.NewIdentity(cert); !errors.Is(err, seal.ErrInvalidIdentity) {
				t.Fatalf("err = %v, want ErrInvalidIdentity", err)
			}
		})
	}
}

func TestAnnouncementRefresh(t *testing.T) {
	ca := seal.NewTestCA(t, "signer CA")
	now := time.Now()
	clock := func() time.Time { return now }
	id, err := seal.NewIdentityWithClock(ca.Issue(t, "s", seal.CertOptions{NotAfter: now.Add(20 * 24 * time.Hour)}), clock)
	if err != nil {
		t.Fatal(err)
	}
	first := id.Announcement()
	now = now.Add(seal.AnnouncementTTL/2 - time.Minute)
	if !bytes.Equal(first, id.Announcement()) {
		t.Fatal("announcement changed before half its lifetime")
	}
	now = now.Add(2 * time.Minute)
	second := id.Announcement()
	if bytes.Equal(first, second) {
		t.Fatal("announcement not refreshed after half its lifetime")
	}
	// The CA in this test expires after a day; verify at a time both are valid.
	p1, err := seal.VerifyAnnouncement(first, ca.Pool(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := seal.VerifyAnnouncement(second, ca.Pool(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !p2.ExpiresAt.After(p1.ExpiresAt) {
		t.Fatal("refreshed announcement does not live longer")
	}
}

func flipAt(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}
