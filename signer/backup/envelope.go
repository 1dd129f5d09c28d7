// Package backup keeps an operator's independent copy of every key share a
// signer holds, and rebuilds keys from those copies offline.
//
// At a signer, each active share is encrypted with filippo.io/age to the
// operator's recovery recipients (X25519, or the post-quantum hybrid
// ML-KEM-768+X25519 ones of age 1.3) and stored as
// <prefix>/<wallet id>/<signer name>.age in a directory or an S3 bucket by a
// background uploader whose queue lives in the signer's own database, so a
// restart loses nothing and a slow or dead target never holds up signing.
//
// `sigil recover` reads t such files with the operator's age identity,
// checks they belong together, and interpolates the private key (Recover).
//
// Inside the age file is a small versioned envelope: a JSON header naming
// the wallet, signer, key scheme, group, threshold and public key, followed
// by the share itself (the multi-party-sig cmp.Config encoding). The header
// is checked against the share and the file name at recovery, so backups
// cannot be mixed up silently. The plaintext is secret: buffers this package
// owns are zeroed after use and nothing of it is ever logged.
package backup

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/signer/mpc"
)

// Format identifiers.
const (
	// magic starts every backup plaintext.
	magic = "SIGILBAK"
	// Version is the envelope format version this code writes and reads.
	Version = 1
	// KeySchemeSecp256k1 is the only key scheme so far (CMP ECDSA shares).
	KeySchemeSecp256k1 = "ecdsa-secp256k1"
	// ProtocolCMP names the share encoding: a multi-party-sig cmp.Config.
	ProtocolCMP = "cmp"
	// ProtocolHSMWrapped names an HSM wallet's key wrapped under the HSM
	// master key (CKM_AES_KEY_WRAP_PAD of a PKCS#8 key): it takes the
	// escrowed master key to use.
	ProtocolHSMWrapped = "pkcs11-aes-key-wrap-pad"
	// HSMHolder is the signer name of an HSM wallet's backup: its file is
	// <wallet id>/hsm.age.
	HSMHolder = "hsm"
	// Ext is the file extension of a backup.
	Ext = ".age"
	// maxHeader bounds the JSON header a reader accepts.
	maxHeader = 64 << 10
	// maxFile bounds an age file a reader accepts (a CMP share is ~4 KiB).
	maxFile = 4 << 20
)

// Header is the public part of a backup: what it belongs to. It is
// encrypted with the share all the same.
type Header struct {
	WalletID  string `json:"wallet_id"`
	Signer    string `json:"signer"`
	KeyScheme string `json:"key_scheme"`
	Protocol  string `json:"protocol"`
	// KeyID is the ceremony that produced this key material (the key
	// generation, later a refresh): shares of different ids never combine.
	KeyID     string    `json:"key_id"`
	Threshold int       `json:"threshold"`  // Sigil's t
	Group     []string  `json:"group"`      // all n signers, sorted
	PublicKey string    `json:"public_key"` // hex, 33-byte compressed
	CreatedAt time.Time `json:"created_at"`
}

// Name is the object name of a backup below the target's prefix.
func Name(walletID, signer string) string { return walletID + "/" + signer + Ext }

// Share is one decrypted backup: its header and the signer's share.
type Share struct {
	Header
	// Config is the decoded share (ProtocolCMP). Its secrets live in big
	// integers this package cannot zero; callers drop it as soon as they
	// are done.
	Config *cmp.Config
	// Wrapped is the wrapped key (ProtocolHSMWrapped); KeyID is then the
	// fingerprint of the master key it is wrapped under.
	Wrapped []byte
}

// Errors of reading a backup. Each says what is wrong without showing
// anything secret.
var (
	ErrWrongIdentity = errors.New("none of the identities can decrypt it (a wrong --identity, a file encrypted to other recipients, or an altered recipient stanza)")
	ErrDamaged       = errors.New("it is damaged or was altered (age decryption failed)")
	ErrFormat        = errors.New("it is not a Sigil share backup of a known format")
	ErrInconsistent  = errors.New("its contents do not match its header")
)

// newHeader describes a share from the share itself.
func newHeader(walletID, signer, keyID string, cfg *cmp.Config, now time.Time) (Header, error) {
	pub, err := mpc.PublicKey(cfg)
	if err != nil {
		return Header{}, err
	}
	group := make([]string, 0, len(cfg.Public))
	for id := range cfg.Public {
		group = append(group, string(id))
	}
	slices.Sort(group)
	return Header{
		WalletID: walletID, Signer: signer, KeyScheme: KeySchemeSecp256k1, Protocol: ProtocolCMP, KeyID: keyID,
		Threshold: cfg.Threshold + 1, Group: group, PublicKey: hex.EncodeToString(pub), CreatedAt: now.UTC(),
	}, nil
}

// encode writes magic | version | uint32 header length | header | share.
// The caller zeroes the result.
func encode(h Header, share []byte) ([]byte, error) {
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(magic)+5+len(hj)+len(share))
	out = append(out, magic...)
	out = append(out, Version)
	out = binary.BigEndian.AppendUint32(out, uint32(len(hj)))
	out = append(out, hj...)
	return append(out, share...), nil
}

// decode parses a plaintext made by encode and checks the share against its
// header. It never returns share bytes: only the decoded config.
func decode(plain []byte) (*Share, error) {
	if len(plain) < len(magic)+5 || string(plain[:len(magic)]) != magic {
		return nil, ErrFormat
	}
	if v := plain[len(magic)]; v != Version {
		return nil, fmt.Errorf("%w: version %d (this sigil reads version %d)", ErrFormat, v, Version)
	}
	n := binary.BigEndian.Uint32(plain[len(magic)+1:])
	rest := plain[len(magic)+5:]
	if n > maxHeader || int(n) > len(rest) {
		return nil, fmt.Errorf("%w: bad header length", ErrFormat)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(rest[:n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrFormat, err) //nolint:errorlint // the JSON error is text only; ErrFormat is the one to match
	}
	if h.KeyScheme == KeySchemeSecp256k1 && h.Protocol == ProtocolHSMWrapped {
		return decodeWrapped(h, rest[n:])
	}
	if h.KeyScheme != KeySchemeSecp256k1 || h.Protocol != ProtocolCMP {
		return nil, fmt.Errorf("%w: key scheme %q, protocol %q", ErrFormat, h.KeyScheme, h.Protocol)
	}
	cfg := cmp.EmptyConfig(curve.Secp256k1{})
	if err := cfg.UnmarshalBinary(rest[n:]); err != nil {
		return nil, fmt.Errorf("%w: the share does not decode", ErrFormat)
	}
	if err := h.check(cfg); err != nil {
		return nil, err
	}
	return &Share{Header: h, Config: cfg}, nil
}

// check holds the header against the share it came with, including the
// share's own consistency: its secret matches its public share.
func (h Header) check(cfg *cmp.Config) error {
	want, err := newHeader(h.WalletID, h.Signer, h.KeyID, cfg, h.CreatedAt)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInconsistent, err) //nolint:errorlint // text only
	}
	switch {
	case string(cfg.ID) != h.Signer:
		return fmt.Errorf("%w: the share is party %q, the header says signer %q", ErrInconsistent, cfg.ID, h.Signer)
	case want.Threshold != h.Threshold:
		return fmt.Errorf("%w: threshold", ErrInconsistent)
	case !slices.Equal(want.Group, h.Group):
		return fmt.Errorf("%w: group", ErrInconsistent)
	case want.PublicKey != h.PublicKey:
		return fmt.Errorf("%w: public key", ErrInconsistent)
	case h.WalletID == "" || h.KeyID == "":
		return fmt.Errorf("%w: no wallet or key id", ErrInconsistent)
	}
	own, ok := cfg.Public[cfg.ID]
	if !ok || cfg.ECDSA == nil || !cfg.ECDSA.ActOnBase().Equal(own.ECDSA) {
		return fmt.Errorf("%w: the secret share does not match its public share", ErrInconsistent)
	}
	return nil
}

// Encrypt makes the age file of one share: cfgBytes is the cmp.Config
// encoding the signer stores. It does not keep or modify cfgBytes.
func Encrypt(recipients []age.Recipient, walletID, signer, keyID string, cfgBytes []byte, now time.Time) ([]byte, error) {
	cfg := cmp.EmptyConfig(curve.Secp256k1{})
	if err := cfg.UnmarshalBinary(cfgBytes); err != nil {
		return nil, fmt.Errorf("backup: decode share: %w", err)
	}
	if string(cfg.ID) != signer {
		return nil, fmt.Errorf("backup: the share is party %q, not %q", cfg.ID, signer)
	}
	h, err := newHeader(walletID, signer, keyID, cfg, now)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	plain, err := encode(h, cfgBytes)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return seal(recipients, plain)
}

// seal age-encrypts a plaintext envelope.
func seal(recipients []age.Recipient, plain []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := age.Encrypt(&out, recipients...)
	if err != nil {
		return nil, fmt.Errorf("backup: age: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("backup: age: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("backup: age: %w", err)
	}
	return out.Bytes(), nil
}

// Decrypt opens one age file and checks it. name, when not empty, is the
// file's name (its path ending in <wallet id>/<signer>.age, or just
// <signer>.age): a backup whose header disagrees with its name is refused.
func Decrypt(file []byte, identities []age.Identity, name string) (*Share, error) {
	r, err := age.Decrypt(bytes.NewReader(file), identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, ErrWrongIdentity
		}
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err) //nolint:errorlint // age's text, for the operator
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxFile))
	defer clear(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err) //nolint:errorlint // age's text, for the operator
	}
	sh, err := decode(plain)
	if err != nil {
		return nil, err
	}
	if name != "" {
		if err := sh.checkName(name); err != nil {
			return nil, err
		}
	}
	return sh, nil
}

// checkName holds the header against the file's name.
func (sh *Share) checkName(name string) error {
	name = strings.ReplaceAll(name, "\\", "/")
	base := path.Base(name)
	if base != sh.Signer+Ext {
		return fmt.Errorf("%w: the file is named %s but holds the share of signer %s", ErrInconsistent, base, sh.Signer)
	}
	if dir := path.Base(path.Dir(name)); strings.HasPrefix(dir, "wal_") && dir != sh.WalletID {
		return fmt.Errorf("%w: the file is in folder %s but holds a share of wallet %s", ErrInconsistent, dir, sh.WalletID)
	}
	return nil
}

// EncryptWrapped makes the age file of an HSM wallet's wrapped key.
func EncryptWrapped(recipients []age.Recipient, walletID string, pub, wrapped []byte, masterKeyFingerprint string, now time.Time) ([]byte, error) {
	h := Header{WalletID: walletID, Signer: HSMHolder, KeyScheme: KeySchemeSecp256k1, Protocol: ProtocolHSMWrapped,
		KeyID: masterKeyFingerprint, Threshold: 1, Group: []string{HSMHolder}, PublicKey: hex.EncodeToString(pub), CreatedAt: now.UTC()}
	if _, err := checkWrapped(h, wrapped); err != nil {
		return nil, err
	}
	plain, err := encode(h, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return seal(recipients, plain)
}

func decodeWrapped(h Header, payload []byte) (*Share, error) {
	return checkWrapped(h, bytes.Clone(payload))
}

func checkWrapped(h Header, wrapped []byte) (*Share, error) {
	pub, err := hex.DecodeString(h.PublicKey)
	switch {
	case err != nil || len(pub) != 33 || (pub[0] != 2 && pub[0] != 3):
		return nil, fmt.Errorf("%w: public key", ErrInconsistent)
	case h.Signer != HSMHolder || h.Threshold != 1 || !slices.Equal(h.Group, []string{HSMHolder}):
		return nil, fmt.Errorf("%w: an HSM key's backup names signer %q, group %v, threshold %d", ErrInconsistent, h.Signer, h.Group, h.Threshold)
	case h.WalletID == "" || h.KeyID == "":
		return nil, fmt.Errorf("%w: no wallet id or master key fingerprint", ErrInconsistent)
	case len(wrapped) < 16 || len(wrapped)%8 != 0:
		return nil, fmt.Errorf("%w: %d bytes is no wrapped key", ErrInconsistent, len(wrapped))
	}
	return &Share{Header: h, Wrapped: wrapped}, nil
}
