package hsm

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/miekg/pkcs11"

	"github.com/sigil-wallet/sigil/internal/ecsig"
)

// secp256k1Params is CKA_EC_PARAMS for secp256k1: the DER encoding of the
// named-curve OID 1.3.132.0.10.
var secp256k1Params = []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a}

// DigestSize is the size of the message digest Sign accepts.
const DigestSize = 32

func wrapMech() []*pkcs11.Mechanism {
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}
}

// GenerateKey creates a secp256k1 key pair and returns the 33-byte compressed
// public key and the private key wrapped under the master key. The HSM keeps
// nothing: the pair lives as session objects only until it is wrapped.
//
// Before returning, the blob is unwrapped and made to sign a random digest
// that is verified against the public key. A wallet whose blob cannot sign
// would lose whatever is sent to it, and keygen is rare enough to afford one
// extra signature.
func (h *HSM) GenerateKey(ctx context.Context) (pub, wrapped []byte, err error) {
	var pk *secp256k1.PublicKey
	err = h.withMasterKey(ctx, func(s *session, mk pkcs11.ObjectHandle) (err error) {
		pubObj, privObj, err := h.generatePair(s)
		if err != nil {
			return err
		}
		// Destroy both on every path. Session objects would also vanish with
		// the session, but pooled sessions live for the life of the process.
		defer func() {
			err = errors.Join(err, h.destroy(s, privObj), h.destroy(s, pubObj))
		}()
		attrs, err := h.mod.ctx.GetAttributeValue(s.h, pubObj,
			[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		if err != nil {
			return ckrError("C_GetAttributeValue (CKA_EC_POINT)", err)
		}
		if pk, err = parseECPoint(attrs[0].Value); err != nil {
			return err
		}
		err = h.call("wrap", func() (err error) {
			wrapped, err = h.mod.ctx.WrapKey(s.h, wrapMech(), mk, privObj)
			return err
		})
		return ckrError("C_WrapKey", err)
	})
	if err != nil {
		return nil, nil, err
	}
	var probe [DigestSize]byte
	_, _ = rand.Read(probe[:]) // never fails since Go 1.24
	if _, err := h.sign(ctx, wrapped, pk, probe[:]); err != nil {
		return nil, nil, fmt.Errorf("hsm: self-check of the new key failed: %w", err)
	}
	return pk.SerializeCompressed(), wrapped, nil
}

func (h *HSM) generatePair(s *session) (pub, priv pkcs11.ObjectHandle, err error) {
	pubTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, secp256k1Params),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
	}
	// CKA_EXTRACTABLE=true is what allows C_WrapKey; CKA_SENSITIVE=true still
	// forbids reading CKA_VALUE in the clear.
	privTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	}
	err = h.call("generate", func() (err error) {
		pub, priv, err = h.mod.ctx.GenerateKeyPair(s.h,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pubTmpl, privTmpl)
		return err
	})
	return pub, priv, ckrError("C_GenerateKeyPair (secp256k1)", err)
}

// Sign signs a 32-byte digest with the wrapped key whose public key is pub
// (33-byte compressed or 65-byte uncompressed). The result has a low S and a
// recovery id, and has been verified against pub, so a blob that belongs to
// another key yields ErrSignature rather than a wrong signature.
func (h *HSM) Sign(ctx context.Context, wrapped, pub, digest []byte) (ecsig.Signature, error) {
	if len(digest) != DigestSize {
		return ecsig.Signature{}, fmt.Errorf("%w: digest must be %d bytes, got %d", ErrInvalidInput, DigestSize, len(digest))
	}
	// AES key wrap with padding yields at least 16 bytes, in 8-byte steps.
	if len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return ecsig.Signature{}, fmt.Errorf("%w: wrapped key of %d bytes is not an AES-KWP blob", ErrInvalidInput, len(wrapped))
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return ecsig.Signature{}, fmt.Errorf("%w: public key: %v", ErrInvalidInput, err)
	}
	return h.sign(ctx, wrapped, pk, digest)
}

func (h *HSM) sign(ctx context.Context, wrapped []byte, pk *secp256k1.PublicKey, digest []byte) (ecsig.Signature, error) {
	var raw []byte
	err := h.withMasterKey(ctx, func(s *session, mk pkcs11.ObjectHandle) (err error) {
		key, err := h.unwrap(s, mk, wrapped)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, h.destroy(s, key)) }()
		err = h.call("sign", func() error {
			if err := h.mod.ctx.SignInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, key); err != nil {
				return err
			}
			raw, err = h.mod.ctx.Sign(s.h, digest)
			return err
		})
		return ckrError("C_Sign (CKM_ECDSA)", err)
	})
	if err != nil {
		return ecsig.Signature{}, err
	}
	return finishSignature(raw, digest, pk)
}

// unwrap turns a blob into a session private key that can sign and do
// nothing else; it is not extractable, since nothing re-wraps it.
//
// The template leaves out CKA_EC_PARAMS: PKCS#11 forbids it when unwrapping
// (the curve travels inside the PKCS#8 blob) and SoftHSM 2.6.1 enforces that
// with CKR_ATTRIBUTE_READ_ONLY. A blob for another curve or key cannot slip
// through, since every signature is verified against the wallet's key.
func (h *HSM) unwrap(s *session, mk pkcs11.ObjectHandle, wrapped []byte) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	}
	var key pkcs11.ObjectHandle
	err := h.call("unwrap", func() (err error) {
		key, err = h.mod.ctx.UnwrapKey(s.h, wrapMech(), mk, wrapped, tmpl)
		return err
	})
	if err != nil {
		switch {
		case isCKR(err, pkcs11.CKR_WRAPPED_KEY_INVALID), isCKR(err, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE),
			isCKR(err, pkcs11.CKR_ENCRYPTED_DATA_INVALID):
			return 0, fmt.Errorf("%w: %v", ErrWrappedKey, err)
		case isCKR(err, pkcs11.CKR_GENERAL_ERROR):
			// SoftHSM 2.6.1 reports a failed AES-KWP integrity check as
			// CKR_GENERAL_ERROR; a real fault would also fail other calls.
			return 0, fmt.Errorf("%w: %v (SoftHSM's code for a failed integrity check)", ErrWrappedKey, err)
		}
		return 0, ckrError("C_UnwrapKey", err)
	}
	return key, nil
}

// ulong decodes a CK_ULONG attribute value, which is in host byte order and
// as wide as the platform's unsigned long.
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return 0
}

// boolean decodes a CK_BBOOL attribute value.
func boolean(b []byte) bool { return len(b) == 1 && b[0] != 0 }
