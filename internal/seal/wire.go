package seal

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
)

// reader decodes the fixed layouts strictly. The first failure sticks, so a
// decoder reads every field and checks ok() once.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// bytes8/16/32 read a length-prefixed field and enforce [lo, hi] on its
// length before touching the data.
func (r *reader) bytes8(lo, hi int) []byte  { return r.bounded(int(r.u8()), lo, hi) }
func (r *reader) bytes16(lo, hi int) []byte { return r.bounded(int(r.u16()), lo, hi) }
func (r *reader) bytes32(lo, hi int) []byte { return r.bounded(int(r.u32()), lo, hi) }

func (r *reader) bounded(n, lo, hi int) []byte {
	if n < lo || n > hi {
		r.bad = true
		return nil
	}
	return r.take(n)
}

// done reports whether every read succeeded and nothing is left over.
func (r *reader) done() bool { return !r.bad && len(r.b) == 0 }

func put8(b []byte, v []byte) []byte {
	b = append(b, byte(len(v)))
	return append(b, v...)
}

func put16(b []byte, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func put32(b []byte, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// digest hashes msg under a domain label, so a signature made for one
// purpose (an announcement) can never be presented as another (an
// envelope), even if the encodings happened to collide.
func digest(domain string, msg []byte) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write(msg)
	return h.Sum(nil)
}

func sign(key crypto.Signer, domain string, msg []byte) ([]byte, error) {
	return key.Sign(rand.Reader, digest(domain, msg), crypto.SHA256)
}

func verify(pub *ecdsa.PublicKey, domain string, msg, sig []byte) bool {
	return ecdsa.VerifyASN1(pub, digest(domain, msg), sig)
}

// validName accepts the names that can serve as both a certificate CN and
// an MPC party id: printable ASCII without spaces, 1 to MaxNameLen bytes.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
