package seal_test

import (
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/seal"
)

// FuzzOpen feeds arbitrary bytes to Open. Seeds are real envelopes, so the
// fuzzer starts from inputs that pass decoding and reach the signature and
// HPKE checks.
func FuzzOpen(f *testing.F) {
	w := newWorld(f)
	for i, p := range [][]byte{nil, []byte("x"), make([]byte, 300)} {
		f.Add("a", w.seal(f, "a", "b", uint32(i), p))
		f.Add("c", w.seal(f, "c", "b", uint32(i), p))
	}
	f.Add("a", w.seal(f, "a", "c", 1, nil)) // not for b
	f.Add("a", []byte{})
	b := w.sessions["b"]
	f.Fuzz(func(t *testing.T, from string, env []byte) {
		h, payload, err := b.Open(from, env)
		if err != nil {
			if payload != nil {
				t.Fatal("payload with error")
			}
			return
		}
		// Only untouched seeds can open, and then only as what they claim.
		if h.Recipient != "b" || h.Sender != from || h.Ceremony != ceremony {
			t.Fatalf("opened envelope with header %+v from %q", h, from)
		}
	})
}

// FuzzVerifyAnnouncement checks that no input panics and that anything
// accepted names a valid peer.
func FuzzVerifyAnnouncement(f *testing.F) {
	w := newWorld(f)
	for _, id := range w.ids {
		f.Add(id.Announcement())
	}
	f.Add([]byte("SA\x01"))
	roots := w.ca.Pool()
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := seal.VerifyAnnouncement(b, roots, now)
		if err != nil {
			return
		}
		if p.Name == "" || p.Certificate == nil || p.Certificate.Subject.CommonName != p.Name {
			t.Fatalf("accepted announcement yields peer %+v", p)
		}
	})
}
