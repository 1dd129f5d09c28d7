package seal

import (
	"encoding/binary"
	"fmt"
)

// Envelope layout (version 1, big-endian):
//
//	header:
//	  "SE" 0x01              magic and version
//	  u8  len | ceremony id  1..MaxCeremonyIDLen
//	  u8  len | sender       1..MaxNameLen
//	  u8  len | recipient    1..MaxNameLen
//	  u32 round
//	  u64 seq                per sender->recipient, from 1
//	u16 len | enc            HPKE encapsulated key, exactly 32 bytes
//	u32 len | ciphertext     AES-256-GCM, 16..MaxPayloadSize+16 bytes
//	u8  len | signature      ASN.1 ECDSA P-256 by the sender's certificate
//	                         key over SHA-256(domainEnvelope || 0 || all above)
//
// The header bytes are both the HPKE info (prefixed by domainHPKE) and the
// AEAD additional data.
const (
	// MaxPayloadSize bounds one sealed payload. The largest CMP messages are
	// a few hundred KiB; this matches mpc.DefaultMaxMessageSize.
	MaxPayloadSize = 8 << 20
	// MaxCeremonyIDLen bounds the ceremony id.
	MaxCeremonyIDLen = 128

	aeadOverhead = 16

	domainEnvelope = "sigil/seal/v1/envelope"
	domainHPKE     = "sigil/seal/v1/hpke"
)

var magicEnvelope = []byte{'S', 'E', 1}

// Header is the cleartext, authenticated part of an envelope.
type Header struct {
	Ceremony  string
	Sender    string
	Recipient string
	Round     uint32
	Seq       uint64
}

func (h *Header) encode() []byte {
	b := make([]byte, 0, len(magicEnvelope)+3+len(h.Ceremony)+len(h.Sender)+len(h.Recipient)+12)
	b = append(b, magicEnvelope...)
	b = put8(b, []byte(h.Ceremony))
	b = put8(b, []byte(h.Sender))
	b = put8(b, []byte(h.Recipient))
	b = binary.BigEndian.AppendUint32(b, h.Round)
	return binary.BigEndian.AppendUint64(b, h.Seq)
}

type envelope struct {
	Header
	header []byte // encoded header, as authenticated
	enc    []byte
	ct     []byte
	sig    []byte
	signed []byte // everything before the signature field
}

func decodeEnvelope(b []byte) (*envelope, error) {
	r := reader{b: b}
	if string(r.take(len(magicEnvelope))) != string(magicEnvelope) {
		return nil, fmt.Errorf("%w: not a version 1 envelope", ErrMalformed)
	}
	e := &envelope{}
	e.Ceremony = string(r.bytes8(1, MaxCeremonyIDLen))
	e.Sender = string(r.bytes8(1, MaxNameLen))
	e.Recipient = string(r.bytes8(1, MaxNameLen))
	e.Round = r.u32()
	e.Seq = r.u64()
	headerLen := len(b) - len(r.b)
	e.enc = r.bytes16(hpkeKeyLen, hpkeKeyLen)
	e.ct = r.bytes32(aeadOverhead, MaxPayloadSize+aeadOverhead)
	signedLen := len(b) - len(r.b)
	e.sig = r.bytes8(minSigLen, maxSigLen)
	if !r.done() {
		return nil, fmt.Errorf("%w: bad envelope encoding", ErrMalformed)
	}
	// Names and ids are compared as strings later; refusing odd bytes here
	// keeps a look-alike id from ever reaching a log or a map key.
	if !validName(e.Sender) || !validName(e.Recipient) || !validCeremonyID(e.Ceremony) || e.Seq == 0 {
		return nil, fmt.Errorf("%w: bad header field", ErrMalformed)
	}
	e.header = b[:headerLen:headerLen]
	e.signed = b[:signedLen:signedLen]
	return e, nil
}

// PeekHeader decodes an envelope's header without verifying anything. The
// relay may use it to refuse envelopes whose sender, recipient or ceremony
// disagree with the request carrying them; it proves nothing by itself.
func PeekHeader(b []byte) (Header, error) {
	e, err := decodeEnvelope(b)
	if err != nil {
		return Header{}, err
	}
	return e.Header, nil
}

func hpkeInfo(header []byte) []byte {
	info := make([]byte, 0, len(domainHPKE)+1+len(header))
	info = append(info, domainHPKE...)
	info = append(info, 0)
	return append(info, header...)
}

func validCeremonyID(s string) bool {
	if len(s) == 0 || len(s) > MaxCeremonyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
