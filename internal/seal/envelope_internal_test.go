package seal

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeEnvelope checks that the decoder never panics and is canonical:
// whatever it accepts re-encodes to exactly the input, so two different byte
// strings can never carry the same authenticated envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	ca := NewTestCA(f, "signer CA")
	peers := map[string]*Peer{}
	ids := map[string]*Identity{}
	for _, name := range []string{"a", "b"} {
		id, err := NewIdentity(ca.Issue(f, name, CertOptions{}))
		if err != nil {
			f.Fatal(err)
		}
		ids[name] = id
		if peers[name], err = VerifyAnnouncement(id.Announcement(), ca.Pool(), time.Now()); err != nil {
			f.Fatal(err)
		}
	}
	s, err := NewSession(ids["a"], "ceremony-1", peers)
	if err != nil {
		f.Fatal(err)
	}
	for i, p := range [][]byte{nil, []byte("payload"), make([]byte, 1000)} {
		env, err := s.Seal("b", uint32(i), p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(env)
	}
	f.Add([]byte("SE\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		re := e.Header.encode()
		if !bytes.Equal(re, e.header) {
			t.Fatalf("header re-encodes differently")
		}
		re = put16(re, e.enc)
		re = put32(re, e.ct)
		if !bytes.Equal(re, e.signed) {
			t.Fatalf("signed part re-encodes differently")
		}
		if !bytes.Equal(put8(re, e.sig), b) {
			t.Fatalf("envelope re-encodes differently")
		}
	})
}

func TestReplayWindow(t *testing.T) {
	var r replayState
	accept := func(seq uint64, want bool) {
		t.Helper()
		if got := r.record(seq); got != want {
			t.Fatalf("record(%d) = %v, want %v", seq, got, want)
		}
	}
	accept(1, true)
	accept(1, false)
	accept(3, true)
	accept(2, true)
	accept(2, false)
	accept(3, false)
	accept(70, true) // crosses a word boundary
	accept(4, true)
	accept(4, false)
	accept(3, false)
	accept(69, true)
	accept(70+replayWindow-1, true)
	accept(69, false) // now outside the window: refused, cannot be told apart
	accept(71, true)  // just inside the window, never seen
	accept(71, false)
	accept(70+replayWindow-1+5000, true)
	accept(70+replayWindow-1, false)
}

func TestReplayWindowMatchesMap(t *testing.T) {
	// Random walk compared against an exact map for seqs within the window.
	var r replayState
	seen := map[uint64]bool{}
	var top uint64
	x := uint64(12345)
	for range 20000 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		seq := top + 1 + x%300
		if x%3 != 0 && top > 600 {
			seq = top - x%600
		}
		want := !seen[seq] && (seq > top || top-seq < replayWindow)
		if got := r.record(seq); got != want {
			t.Fatalf("record(%d) top %d = %v, want %v", seq, top, got, want)
		}
		if want {
			seen[seq] = true
			top = max(top, seq)
		}
	}
}
