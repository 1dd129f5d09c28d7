package seal

import (
	"crypto/hpke"
	"fmt"
	"maps"
	"sync"
)

// replayWindow is how far behind a sender's newest sequence number an
// envelope may arrive and still be accepted once. The relay delivers each
// sender's messages in order; the window only absorbs the reordering a
// resumed stream or concurrent senders can cause, while keeping the replay
// state a fixed size per peer.
const replayWindow = 1024

// Session seals and opens the messages of one ceremony. It is safe for
// concurrent use.
type Session struct {
	self     *Identity
	ceremony string
	peers    map[string]*Peer

	mu   sync.Mutex
	next map[string]uint64       // next seq per recipient
	seen map[string]*replayState // per sender
}

// NewSession starts sealing for ceremonyID (printable ASCII, 1 to
// MaxCeremonyIDLen bytes) among peers, keyed by signer name. An entry for
// self, if present, is ignored.
//
// Replay state lives in the Session, so a process must use exactly one
// Session per ceremony. A peer that restarts mid-ceremony comes back with a
// new HPKE key and sequence numbers from 1, which this Session refuses as
// replays; that is intended, since the restarted peer lost its protocol
// state and the ceremony has to be retried anyway.
func NewSession(self *Identity, ceremonyID string, peers map[string]*Peer) (*Session, error) {
	if self == nil {
		return nil, fmt.Errorf("%w: nil identity", ErrInvalidArgument)
	}
	if !validCeremonyID(ceremonyID) {
		return nil, fmt.Errorf("%w: ceremony id must be 1 to %d printable ASCII bytes", ErrInvalidArgument, MaxCeremonyIDLen)
	}
	ps := make(map[string]*Peer, len(peers))
	for name, p := range maps.All(peers) {
		if p == nil || p.Name != name || p.sigKey == nil || p.hpke == nil {
			return nil, fmt.Errorf("%w: peer %q is not a verified peer of that name", ErrInvalidArgument, name)
		}
		if name != self.name {
			ps[name] = p
		}
	}
	return &Session{
		self:     self,
		ceremony: ceremonyID,
		peers:    ps,
		next:     make(map[string]uint64, len(ps)),
		seen:     make(map[string]*replayState, len(ps)),
	}, nil
}

// Seal encrypts payload to peer to for the given protocol round and signs
// the result. Each call uses the next sequence number for that recipient.
func (s *Session) Seal(to string, round uint32, payload []byte) ([]byte, error) {
	peer, ok := s.peers[to]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownRecipient, to)
	}
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	s.mu.Lock()
	s.next[to]++
	seq := s.next[to]
	s.mu.Unlock()

	h := Header{Ceremony: s.ceremony, Sender: s.self.name, Recipient: to, Round: round, Seq: seq}
	header := h.encode()
	enc, sender, err := hpke.NewSender(peer.hpke, suiteKDF, suiteAEAD, hpkeInfo(header))
	if err != nil {
		return nil, fmt.Errorf("seal: HPKE setup: %w", err)
	}
	ct, err := sender.Seal(header, payload)
	if err != nil {
		return nil, fmt.Errorf("seal: HPKE seal: %w", err)
	}
	b := make([]byte, 0, len(header)+2+len(enc)+4+len(ct)+1+maxSigLen)
	b = append(b, header...)
	b = put16(b, enc)
	b = put32(b, ct)
	sig, err := sign(s.self.key, domainEnvelope, b)
	if err != nil {
		return nil, fmt.Errorf("seal: sign envelope: %w", err)
	}
	return put8(b, sig), nil
}

// Open verifies and decrypts an envelope that the relay says came from
// signer from (the mTLS identity of the connection that submitted it). The
// checks run cheapest first; every failure maps to one of the package's
// sentinel errors.
func (s *Session) Open(from string, envelope []byte) (Header, []byte, error) {
	e, err := decodeEnvelope(envelope)
	if err != nil {
		return Header{}, nil, err
	}
	switch {
	case e.Ceremony != s.ceremony:
		return Header{}, nil, ErrWrongCeremony
	case e.Recipient != s.self.name:
		return Header{}, nil, ErrNotForMe
	case e.Sender != from:
		return Header{}, nil, ErrSenderMismatch
	}
	peer, ok := s.peers[from]
	if !ok {
		return Header{}, nil, fmt.Errorf("%w: %q", ErrUnknownSender, from)
	}
	if s.isReplay(from, e.Seq) {
		return Header{}, nil, ErrReplay
	}
	if !verify(peer.sigKey, domainEnvelope, e.signed, e.sig) {
		return Header{}, nil, ErrBadSignature
	}
	r, err := hpke.NewRecipient(e.enc, s.self.hpke, suiteKDF, suiteAEAD, hpkeInfo(e.header))
	if err != nil {
		return Header{}, nil, ErrDecrypt
	}
	payload, err := r.Open(e.header, e.ct)
	if err != nil {
		return Header{}, nil, ErrDecrypt
	}
	// Recorded only now, so a forged envelope cannot burn a sequence
	// number; a concurrent Open of the same envelope loses here.
	if !s.accept(from, e.Seq) {
		return Header{}, nil, ErrReplay
	}
	return e.Header, payload, nil
}

func (s *Session) isReplay(from string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seen[from]
	return st != nil && !st.fresh(seq)
}

func (s *Session) accept(from string, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seen[from]
	if st == nil {
		st = &replayState{}
		s.seen[from] = st
	}
	return st.record(seq)
}

// replayState is a sliding-window replay filter (as in IPsec ESP): top is the
// highest accepted seq and bit i of mask marks seq top-i as accepted.
type replayState struct {
	top  uint64
	mask [replayWindow / 64]uint64
}

func (r *replayState) fresh(seq uint64) bool {
	if seq > r.top {
		return true
	}
	d := r.top - seq
	if d >= replayWindow {
		return false
	}
	return r.mask[d/64]&(1<<(d%64)) == 0
}

func (r *replayState) record(seq uint64) bool {
	if !r.fresh(seq) {
		return false
	}
	if seq > r.top {
		r.shift(seq - r.top)
		r.top = seq
	}
	d := r.top - seq
	r.mask[d/64] |= 1 << (d % 64)
	return true
}

// shift moves the window forward by n positions (older seqs get higher bit
// indexes).
func (r *replayState) shift(n uint64) {
	if n >= replayWindow {
		r.mask = [replayWindow / 64]uint64{}
		return
	}
	words, rem := int(n/64), uint(n%64)
	var out [replayWindow / 64]uint64
	for i := len(out) - 1; i >= words; i-- {
		v := r.mask[i-words] << rem
		if rem != 0 && i-words-1 >= 0 {
			v |= r.mask[i-words-1] >> (64 - rem)
		}
		out[i] = v
	}
	r.mask = out
}
