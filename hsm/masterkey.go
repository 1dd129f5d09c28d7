package hsm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/miekg/pkcs11"
)

// MasterKeySize is the length of the AES-256 master key in bytes.
const MasterKeySize = 32

// masterKeyAttrs are the attributes every master key gets, generated or
// imported. The key may wrap and unwrap and do nothing else: with CKA_DECRYPT
// any PIN holder could decrypt wrapped blobs by hand and read wallet keys.
// CKA_MODIFIABLE=false stops anyone turning such a capability on later.
func masterKeyAttrs(label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
	}
}

// GenerateMasterKeyMaterial returns 32 random bytes for ImportMasterKey.
//
// Security trade-off: InitMasterKey creates the key inside the HSM, where it
// never exists in host memory, but then only that HSM holds it (unless the
// vendor's own cloning or backup scheme, which stays inside HSM boundaries,
// copies it). Generating the material here is what lets an operator provision
// several HSMs, and keep an offline backup, with the same key; the price is
// that the master key, and with it every wallet, is exposed to this host and
// to wherever the material is kept. Do it on an air-gapped machine, never
// write it to disk unencrypted, prefer splitting it among custodians, and
// zero the buffer once imported (ImportMasterKey does so).
func GenerateMasterKeyMaterial() ([]byte, error) {
	b := make([]byte, MasterKeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("hsm: generating master key material: %w", err)
	}
	return b, nil
}

// InitMasterKey generates the master key inside the token. It refuses with
// ErrMasterKeyExists when a key with the label exists: replacing it would
// orphan every wrapped wallet key.
func (h *HSM) InitMasterKey(ctx context.Context) error {
	return h.provisionMasterKey(ctx, func(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
		tmpl := append(masterKeyAttrs(h.cfg.MasterKeyLabel),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, MasterKeySize))
		var obj pkcs11.ObjectHandle
		err := h.call("generate", func() (err error) {
			obj, err = h.mod.ctx.GenerateKey(sh,
				[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
			return err
		})
		return obj, ckrError("C_GenerateKey (master key)", err)
	})
}

// ImportMasterKey creates the master key from material (MasterKeySize bytes,
// see GenerateMasterKeyMaterial) with the same attributes InitMasterKey uses,
// so several HSMs can unwrap the same blobs. material is zeroed on return,
// whatever the outcome. The copy cgo makes for the C call is freed by
// miekg/pkcs11 without being zeroed; that cannot be helped from Go.
func (h *HSM) ImportMasterKey(ctx context.Context, material []byte) error {
	defer clear(material)
	if len(material) != MasterKeySize {
		return fmt.Errorf("%w: master key material must be %d bytes, got %d",
			ErrInvalidInput, MasterKeySize, len(material))
	}
	return h.provisionMasterKey(ctx, func(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
		value := pkcs11.NewAttribute(pkcs11.CKA_VALUE, material)
		defer clear(value.Value)
		obj, err := h.mod.ctx.CreateObject(sh, append(masterKeyAttrs(h.cfg.MasterKeyLabel), value))
		return obj, ckrError("C_CreateObject (master key)", err)
	})
}

// provisionMasterKey runs create unless a master key exists, and afterwards
// checks no other process created one at the same moment; if one did, ours
// is destroyed so the token keeps exactly one.
func (h *HSM) provisionMasterKey(ctx context.Context, create func(pkcs11.SessionHandle) (pkcs11.ObjectHandle, error)) error {
	h.mkMu.Lock()
	defer h.mkMu.Unlock()
	if h.masterKey != 0 {
		return h.errExists()
	}
	return h.withSession(ctx, func(s *session) error {
		existing, err := h.findObjects(s.h, h.masterKeyQuery())
		if err != nil {
			return err
		}
		if len(existing) > 0 {
			return h.errExists()
		}
		obj, err := create(s.h)
		if err != nil {
			return err
		}
		all, err := h.findObjects(s.h, h.masterKeyQuery())
		if err != nil {
			return err
		}
		if len(all) > 1 {
			_ = h.mod.ctx.DestroyObject(s.h, obj)
			return h.errExists()
		}
		h.masterKey = obj
		return nil
	})
}

func (h *HSM) errExists() error {
	return fmt.Errorf("%w: token %q already holds a key labelled %q; refusing to replace it",
		ErrMasterKeyExists, h.cfg.TokenLabel, h.cfg.MasterKeyLabel)
}

func (h *HSM) masterKeyQuery() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.cfg.MasterKeyLabel),
	}
}

// findMasterKey returns the master key's handle, zero if there is none, and
// refuses a key whose attributes would let it leave the HSM or decrypt blobs:
// such a key was not made by Sigil and must not protect wallet keys.
func (h *HSM) findMasterKey(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	objs, err := h.findObjects(sh, h.masterKeyQuery())
	if err != nil {
		return 0, err
	}
	switch len(objs) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, fmt.Errorf("%w: %d keys labelled %q on token %q; keep exactly one",
			ErrMasterKeyPolicy, len(objs), h.cfg.MasterKeyLabel, h.cfg.TokenLabel)
	}
	attrs, err := h.mod.ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, nil),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, nil),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
	})
	if err != nil {
		return 0, ckrError("C_GetAttributeValue (master key)", err)
	}
	var problems []string
	want := func(ok bool, what string) {
		if !ok {
			problems = append(problems, what)
		}
	}
	want(ulong(attrs[0].Value) == pkcs11.CKK_AES, "CKA_KEY_TYPE must be CKK_AES")
	want(ulong(attrs[1].Value) == MasterKeySize, "CKA_VALUE_LEN must be 32")
	want(boolean(attrs[2].Value), "CKA_SENSITIVE must be true")
	want(!boolean(attrs[3].Value), "CKA_EXTRACTABLE must be false")
	want(boolean(attrs[4].Value), "CKA_UNWRAP must be true")
	want(boolean(attrs[5].Value), "CKA_WRAP must be true")
	want(!boolean(attrs[6].Value), "CKA_DECRYPT must be false")
	if len(problems) > 0 {
		return 0, fmt.Errorf("%w: key %q on token %q: %v", ErrMasterKeyPolicy,
			h.cfg.MasterKeyLabel, h.cfg.TokenLabel, problems)
	}
	return objs[0], nil
}

// MasterKeyFingerprint returns a short check value of the master key, equal
// on every HSM holding the same key, so operators can confirm an import
// without exposing the key. It wraps a fixed all-zero AES key under the
// master key (AES key wrap is deterministic) and hashes the result, the same
// idea as a classic key check value.
func (h *HSM) MasterKeyFingerprint(ctx context.Context) (string, error) {
	var sum [sha256.Size]byte
	err := h.withMasterKey(ctx, func(s *session, mk pkcs11.ObjectHandle) error {
		probe, err := h.mod.ctx.CreateObject(s.h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, make([]byte, MasterKeySize)),
		})
		if err != nil {
			return ckrError("C_CreateObject (probe key)", err)
		}
		defer func() { _ = h.destroy(s, probe) }()
		var wrapped []byte
		err = h.call("wrap", func() (err error) {
			wrapped, err = h.mod.ctx.WrapKey(s.h, wrapMech(), mk, probe)
			return err
		})
		if err != nil {
			return ckrError("C_WrapKey (probe key)", err)
		}
		sum = sha256.Sum256(wrapped)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum[:8]), nil
}
