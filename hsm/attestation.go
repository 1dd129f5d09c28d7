package hsm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"

	"github.com/sigil-wallet/sigil/internal/attest"
)

// p256Params is CKA_EC_PARAMS for P-256: the DER named-curve OID
// 1.2.840.10045.3.1.7.
var p256Params = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}

// InitAttestationKey generates the token's attestation key: an ECDSA P-256
// pair whose private half is created on the token, never extractable, and
// may only sign. It signs one statement per new wallet key (see package
// attest) so the coordinator can tell keys this HSM made from keys a
// client with a stolen driver certificate made up. It refuses with
// ErrAttestationKeyExists when the token has one: replacing it would make
// every coordinator pinning it refuse this HSM's keys.
func (h *HSM) InitAttestationKey(ctx context.Context) error {
	return h.withSession(ctx, func(s *session) error {
		priv, _, err := h.findAttestationKey(s.h)
		if err != nil {
			return err
		}
		if priv != 0 {
			return fmt.Errorf("%w: token %q already holds a key labelled %q", ErrAttestationKeyExists, h.cfg.TokenLabel, h.cfg.AttestationKeyLabel)
		}
		label := h.cfg.AttestationKeyLabel
		pubTmpl := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256Params),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
			pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		}
		privTmpl := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
			pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		}
		err = h.call("generate", func() error {
			_, _, err := h.mod.ctx.GenerateKeyPair(s.h,
				[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pubTmpl, privTmpl)
			return err
		})
		return ckrError("C_GenerateKeyPair (attestation key)", err)
	})
}

// AttestationKey returns the token's attestation public key, for the
// coordinator to pin (`sigil hsm attestation-key` prints it as PEM).
func (h *HSM) AttestationKey(ctx context.Context) (*ecdsa.PublicKey, error) {
	var pub *ecdsa.PublicKey
	err := h.withSession(ctx, func(s *session) error {
		_, pubObj, err := h.requireAttestationKey(s.h)
		if err != nil {
			return err
		}
		pub, err = h.readP256(s.h, pubObj)
		return err
	})
	return pub, err
}

// Attest has the HSM sign the attestation statement binding walletID to the
// wallet's public key, and returns the attestation key's id and the
// signature r || s, checked against the key before it is returned.
func (h *HSM) Attest(ctx context.Context, walletID string, publicKey []byte) (keyID, signature []byte, err error) {
	digest := attest.Digest(walletID, publicKey)
	err = h.withSession(ctx, func(s *session) error {
		priv, pubObj, err := h.requireAttestationKey(s.h)
		if err != nil {
			return err
		}
		pub, err := h.readP256(s.h, pubObj)
		if err != nil {
			return err
		}
		err = h.call("sign", func() error {
			if err := h.mod.ctx.SignInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, priv); err != nil {
				return err
			}
			signature, err = h.mod.ctx.Sign(s.h, digest)
			return err
		})
		if err != nil {
			return ckrError("C_Sign (attestation)", err)
		}
		if len(signature) != attest.SignatureSize ||
			!ecdsa.Verify(pub, digest, new(big.Int).SetBytes(signature[:32]), new(big.Int).SetBytes(signature[32:])) {
			// Not ErrSignature: that marks a wallet blob as bad for good,
			// while a retry (SoftHSM issue 901) may well succeed here.
			return errors.New("hsm: the attestation key's signature does not verify against its public key")
		}
		keyID = attest.KeyID(pub)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return keyID, signature, nil
}

func (h *HSM) requireAttestationKey(sh pkcs11.SessionHandle) (priv, pub pkcs11.ObjectHandle, err error) {
	priv, pub, err = h.findAttestationKey(sh)
	if err == nil && priv == 0 {
		err = fmt.Errorf("%w (label %q on token %q)", ErrNoAttestationKey, h.cfg.AttestationKeyLabel, h.cfg.TokenLabel)
	}
	return priv, pub, err
}

// findAttestationKey returns the attestation key pair's handles, zero when
// the token has none, and refuses a private key that could ever have left
// the token or was not generated on it: such a key attests nothing.
func (h *HSM) findAttestationKey(sh pkcs11.SessionHandle) (priv, pub pkcs11.ObjectHandle, err error) {
	find := func(class uint) ([]pkcs11.ObjectHandle, error) {
		return h.findObjects(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.cfg.AttestationKeyLabel),
		})
	}
	privs, err := find(pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return 0, 0, err
	}
	pubs, err := find(pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return 0, 0, err
	}
	switch {
	case len(privs) == 0 && len(pubs) == 0:
		return 0, 0, nil
	case len(privs) != 1 || len(pubs) != 1:
		return 0, 0, fmt.Errorf("%w: token %q has %d private and %d public keys labelled %q; keep exactly one pair",
			ErrAttestationKeyPolicy, h.cfg.TokenLabel, len(privs), len(pubs), h.cfg.AttestationKeyLabel)
	}
	attrs, err := h.mod.ctx.GetAttributeValue(sh, privs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LOCAL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil),
	})
	if err != nil {
		return 0, 0, ckrError("C_GetAttributeValue (attestation key)", err)
	}
	var problems []string
	want := func(ok bool, what string) {
		if !ok {
			problems = append(problems, what)
		}
	}
	want(ulong(attrs[0].Value) == pkcs11.CKK_EC, "CKA_KEY_TYPE must be CKK_EC")
	want(boolean(attrs[1].Value), "CKA_SENSITIVE must be true")
	want(!boolean(attrs[2].Value), "CKA_EXTRACTABLE must be false")
	want(boolean(attrs[3].Value), "CKA_NEVER_EXTRACTABLE must be true")
	want(boolean(attrs[4].Value), "CKA_LOCAL must be true (generated on the token)")
	want(boolean(attrs[5].Value), "CKA_SIGN must be true")
	if len(problems) > 0 {
		return 0, 0, fmt.Errorf("%w: key %q on token %q: %v", ErrAttestationKeyPolicy, h.cfg.AttestationKeyLabel, h.cfg.TokenLabel, problems)
	}
	return privs[0], pubs[0], nil
}

// readP256 reads a P-256 public key object.
func (h *HSM) readP256(sh pkcs11.SessionHandle, obj pkcs11.ObjectHandle) (*ecdsa.PublicKey, error) {
	attrs, err := h.mod.ctx.GetAttributeValue(sh, obj, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, ckrError("C_GetAttributeValue (attestation public key)", err)
	}
	if string(attrs[0].Value) != string(p256Params) {
		return nil, fmt.Errorf("%w: attestation key %q is not on P-256", ErrAttestationKeyPolicy, h.cfg.AttestationKeyLabel)
	}
	point := attrs[1].Value
	var inner []byte
	if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
		point = inner
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("%w: attestation public key: %v", ErrAttestationKeyPolicy, err)
	}
	return pub, nil
}
