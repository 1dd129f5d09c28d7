// Package seal protects the messages MPC signers exchange through the
// coordinator's relay, which is not trusted with them.
//
// Each signer process creates an Identity from its mTLS client certificate
// and a fresh HPKE key pair, and publishes the signed Announcement of that
// key. Peers check an announcement against the signer CA (VerifyAnnouncement)
// and keep the resulting Peer. For each ceremony, a Session seals every
// message to one recipient:
//
//   - confidentiality: HPKE (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//     AES-256-GCM) to the recipient's announced key;
//   - authenticity: an ECDSA P-256 signature by the sender's certificate key
//     over the header, the HPKE encapsulation and the ciphertext;
//   - binding: ceremony id, sender, recipient, round and sequence number form
//     the header, which is the HPKE info and AAD and is signed, so the relay
//     cannot move a message to another ceremony, round or recipient, and a
//     replayed sequence number is refused.
//
// The relay learns sizes, timing and the cleartext header, nothing more. The
// envelope's sender must also equal the sender the relay authenticated by
// mTLS, so a signer cannot pass off another signer's envelope as its own.
//
// Wire formats are fixed-layout binary, big-endian, with every length
// bounded and no trailing bytes accepted; see envelope.go and
// announcement.go.
package seal

import "errors"

// Errors returned by Open. Callers drop the message and may log; none of
// them is a reason to abort a ceremony, since the relay can cause all of
// them.
var (
	// ErrMalformed means the bytes do not parse as a version 1 envelope or
	// announcement, or exceed a size limit.
	ErrMalformed = errors.New("seal: malformed message")
	// ErrWrongCeremony means the envelope belongs to another ceremony.
	ErrWrongCeremony = errors.New("seal: envelope for another ceremony")
	// ErrNotForMe means the envelope is addressed to another signer.
	ErrNotForMe = errors.New("seal: envelope addressed to another signer")
	// ErrSenderMismatch means the envelope's sender differs from the sender
	// the relay authenticated.
	ErrSenderMismatch = errors.New("seal: envelope sender differs from authenticated sender")
	// ErrUnknownSender means the sender is not a peer of this session.
	ErrUnknownSender = errors.New("seal: unknown sender")
	// ErrBadSignature means a signature does not verify under the claimed
	// signer's certificate key.
	ErrBadSignature = errors.New("seal: bad signature")
	// ErrDecrypt means HPKE decryption failed: the envelope was sealed to
	// another key (for instance a previous process of this signer) or altered.
	ErrDecrypt = errors.New("seal: decryption failed")
	// ErrReplay means this sender's sequence number was already accepted, or
	// is too far behind the newest one to tell.
	ErrReplay = errors.New("seal: replayed envelope")
)

// Errors returned while building identities, sessions and envelopes, and
// while verifying announcements.
var (
	// ErrInvalidIdentity means a certificate or key is unfit for sealing.
	ErrInvalidIdentity = errors.New("seal: invalid identity")
	// ErrUntrusted means an announcement's certificate does not chain to
	// the signer CA, is not a signer client certificate, or names another
	// signer.
	ErrUntrusted = errors.New("seal: untrusted certificate")
	// ErrExpired means an announcement is outside its validity period.
	ErrExpired = errors.New("seal: announcement expired or not yet valid")
	// ErrUnknownRecipient means Seal was asked to seal to a non-peer.
	ErrUnknownRecipient = errors.New("seal: unknown recipient")
	// ErrTooLarge means a payload exceeds MaxPayloadSize.
	ErrTooLarge = errors.New("seal: payload too large")
	// ErrInvalidArgument reports a bad ceremony id or peer set.
	ErrInvalidArgument = errors.New("seal: invalid argument")
)
