package hsm

import (
	"context"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Test-only hooks into the handle's sessions, for what the public API rightly
// cannot do: count session objects, read attributes of generated keys, and
// time the bare PKCS#11 calls.

// SessionObjectCount counts session (CKA_TOKEN=false) objects visible to the
// application. PKCS#11 makes session objects visible to every session of the
// application, so any pooled session sees the others' leftovers.
func (h *HSM) SessionObjectCount(ctx context.Context) (n int, err error) {
	err = h.withSession(ctx, func(s *session) error {
		objs, err := h.findObjects(s.h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)})
		n = len(objs)
		return err
	})
	return n, err
}

// TokenObjectCount counts token objects (the master key, in these tests).
func (h *HSM) TokenObjectCount(ctx context.Context) (n int, err error) {
	err = h.withSession(ctx, func(s *session) error {
		objs, err := h.findObjects(s.h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
		n = len(objs)
		return err
	})
	return n, err
}

// PrivateValueReadable generates a key pair exactly as GenerateKey does and
// reports whether CKA_VALUE of the private key can be read, and the error.
func (h *HSM) PrivateValueReadable(ctx context.Context) (readable bool, readErr error, err error) {
	err = h.withSession(ctx, func(s *session) error {
		pub, priv, err := h.generatePair(s)
		if err != nil {
			return err
		}
		defer func() { _ = h.destroy(s, pub) }()
		defer func() { _ = h.destroy(s, priv) }()
		attrs, rerr := h.mod.ctx.GetAttributeValue(s.h, priv,
			[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		readErr = rerr
		readable = rerr == nil && len(attrs) == 1 && len(attrs[0].Value) > 0
		return nil
	})
	return readable, readErr, err
}

// RawUnwrapSignDestroy runs only the PKCS#11 part of Sign.
func (h *HSM) RawUnwrapSignDestroy(ctx context.Context, wrapped, digest []byte) error {
	return h.withMasterKey(ctx, func(s *session, mk pkcs11.ObjectHandle) error {
		key, err := h.unwrap(s, mk, wrapped)
		if err != nil {
			return err
		}
		defer func() { _ = h.destroy(s, key) }()
		if err := h.mod.ctx.SignInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, key); err != nil {
			return err
		}
		_, err = h.mod.ctx.Sign(s.h, digest)
		return err
	})
}

// ResidentSigner keeps one session and one resident session key pair for a
// benchmark; sign signs with it, done releases both.
func (h *HSM) ResidentSigner(ctx context.Context) (sign func(digest []byte) error, done func(), err error) {
	s, err := h.pool.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	pub, priv, err := h.generatePair(s)
	if err != nil {
		h.pool.put(s, err)
		return nil, nil, err
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	sign = func(digest []byte) error {
		if err := h.mod.ctx.SignInit(s.h, mech, priv); err != nil {
			return fmt.Errorf("SignInit: %w", err)
		}
		_, err := h.mod.ctx.Sign(s.h, digest)
		return err
	}
	done = func() {
		_ = h.destroy(s, priv)
		_ = h.destroy(s, pub)
		h.pool.put(s, nil)
	}
	return sign, done, nil
}

// BreakSessions closes every pooled session behind the pool's back, as a
// module restart or device removal would, to exercise replacement.
func (h *HSM) BreakSessions() error {
	return h.mod.ctx.CloseAllSessions(h.slot)
}

// CreateUnsafeMasterKey stores, under the master key label, an AES key that
// can leave the HSM and decrypt, as a careless operator might.
func (h *HSM) CreateUnsafeMasterKey(ctx context.Context) error {
	return h.withSession(ctx, func(s *session) error {
		_, err := h.mod.ctx.CreateObject(s.h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.cfg.MasterKeyLabel),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, make([]byte, 32)),
		})
		return err
	})
}

// PlantExtractableAttestationKey makes a P-256 pair under the attestation
// label that may leave the token, as a careless operator might: the
// handle must refuse to attest with it.
func (h *HSM) PlantExtractableAttestationKey(ctx context.Context) error {
	return h.withSession(ctx, func(s *session) error {
		label := h.cfg.AttestationKeyLabel
		_, _, err := h.mod.ctx.GenerateKeyPair(s.h,
			[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256Params), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
			},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true), pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			})
		return err
	})
}
