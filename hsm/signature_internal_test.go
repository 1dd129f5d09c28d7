package hsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/sigil-wallet/sigil/internal/ecsig"
)

func testKey(t testing.TB) *secp256k1.PrivateKey {
	t.Helper()
	k, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseECPoint(t *testing.T) {
	pub := testKey(t).PubKey()
	raw := pub.SerializeUncompressed()
	der, _ := asn1.Marshal(raw)
	for name, in := range map[string][]byte{"DER OCTET STRING": der, "bare point": raw} {
		got, err := parseECPoint(in)
		if err != nil || !got.IsEqual(pub) {
			t.Errorf("%s: got %v, %v", name, got, err)
		}
	}
	// A bare point whose X starts with 0x3f parses as a DER OCTET STRING of
	// 63 bytes; the fallback must still read it as a point.
	for {
		p := testKey(t).PubKey()
		if b := p.SerializeUncompressed(); b[1] == 0x3f {
			if got, err := parseECPoint(b); err != nil || !got.IsEqual(p) {
				t.Fatalf("ambiguous bare point: %v, %v", got, err)
			}
			break
		}
	}
	for _, bad := range [][]byte{nil, {4}, bytes.Repeat([]byte{4}, 65), {0x04, 0x02, 0x02, 0x01}} {
		if _, err := parseECPoint(bad); err == nil {
			t.Errorf("parseECPoint(%x) succeeded", bad)
		}
	}
}

func FuzzParseECPoint(f *testing.F) {
	raw := testKey(f).PubKey().SerializeUncompressed()
	der, _ := asn1.Marshal(raw)
	f.Add(raw)
	f.Add(der)
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := parseECPoint(b)
		if err == nil && !pk.IsOnCurve() {
			t.Fatal("accepted a point off the curve")
		}
	})
}

// finishSignature must turn either of (r, s) and (r, n-s) into the same
// low-S signature with the right recovery id.
func TestFinishSignatureNormalises(t *testing.T) {
	key := testKey(t)
	pub := key.PubKey()
	for i := range 20 {
		digest := sha256.Sum256([]byte{byte(i)})
		sig := ecdsa.Sign(key, digest[:]) // decred returns low S
		r, s := sig.R(), sig.S()
		var high secp256k1.ModNScalar
		high.NegateVal(&s)
		for _, sv := range []secp256k1.ModNScalar{s, high} {
			rb, sb := r.Bytes(), sv.Bytes()
			got, err := finishSignature(append(rb[:], sb[:]...), digest[:], pub)
			if err != nil {
				t.Fatal(err)
			}
			if got.S != s.Bytes() || got.R != r.Bytes() {
				t.Fatalf("not normalised to the low-S form")
			}
			compact := ecdsa.SignCompact(key, digest[:], true)
			if want := compact[0] - 27 - 4; got.V != want {
				t.Fatalf("V = %d, want %d", got.V, want)
			}
			if !bytes.Equal(got.DER(), sig.Serialize()) {
				t.Fatalf("DER differs from decred's")
			}
		}
	}
}

func TestFinishSignatureRejects(t *testing.T) {
	key := testKey(t)
	digest := sha256.Sum256([]byte("x"))
	sig := ecdsa.Sign(key, digest[:])
	r, s := sig.R(), sig.S()
	rb, sb := r.Bytes(), s.Bytes()
	good := append(rb[:], sb[:]...)
	other := testKey(t).PubKey()
	if _, err := finishSignature(good, digest[:], other); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := finishSignature(good[:63], digest[:], key.PubKey()); err == nil {
		t.Error("short signature accepted")
	}
	zeroS := append(rb[:], make([]byte, 32)...)
	if _, err := finishSignature(zeroS, digest[:], key.PubKey()); err == nil {
		t.Error("zero s accepted")
	}
	overflowR := append(bytes.Repeat([]byte{0xff}, 32), sb[:]...)
	if _, err := finishSignature(overflowR, digest[:], key.PubKey()); err == nil {
		t.Error("r >= n accepted")
	}
}

func TestEthereumLayout(t *testing.T) {
	sig := ecsig.Signature{V: 1}
	sig.R[0], sig.S[31] = 0xaa, 0xbb
	eth := sig.Ethereum()
	if len(eth) != 65 || eth[0] != 0xaa || eth[63] != 0xbb || eth[64] != 1 {
		t.Fatalf("Ethereum() = %x", eth)
	}
}

func BenchmarkFinishSignature(b *testing.B) {
	key := testKey(b)
	digest := sha256.Sum256([]byte("bench"))
	sig := ecdsa.Sign(key, digest[:])
	r, s := sig.R(), sig.S()
	rb, sb := r.Bytes(), s.Bytes()
	raw := append(rb[:], sb[:]...)
	pub := key.PubKey()
	for b.Loop() {
		if _, err := finishSignature(raw, digest[:], pub); err != nil {
			b.Fatal(err)
		}
	}
}
