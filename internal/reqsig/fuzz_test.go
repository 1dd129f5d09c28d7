package reqsig

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the decoder signers and drivers run
// on what the coordinator hands them: it must never panic, and whatever it
// accepts must encode back to exactly the same bytes (one encoding per
// request, so no two byte strings mean the same signed request).
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f).Vectors {
		b, _ := hex.DecodeString(v.Envelope)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte(Domain))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, sig, err := Decode(data)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Envelope(sig), data) {
			t.Fatalf("decoded request re-encodes differently:\n%x\n%x", r.Envelope(sig), data)
		}
		_ = r.Verify(sig)
	})
}
