package sigil

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/crypto/sha3"
	"google.golang.org/protobuf/types/known/timestamppb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
)

// RequestKey is an application's request key: with WithRequestKey, every
// CreateSignature is signed with it end to end, and the signers and HSM
// drivers that trust its public key verify the signature themselves, so a
// compromised coordinator cannot forge a request. Make one with
// `sigil request-key init --out FILE`.
//
// The signed bytes are Sigil's canonical request encoding (version 1); this
// file is its Go SDK copy, kept dependency-free so the SDK needs no server
// package. The golden vectors in sdk/testdata keep it identical to the
// verifiers' (internal/reqsig) and the TypeScript SDK's.
type RequestKey struct {
	algorithm walletv1.RequestKeyAlgorithm
	name      string // canonical algorithm name
	signer    crypto.Signer
	public    []byte
}

// requestDomain separates request signatures from anything else a key signs.
const requestDomain = "sigil/signature-request/v1\x00"

// LoadRequestKey reads a request key file (PKCS #8 PEM). A file that group
// or others may read is refused: the key authorises signatures.
func LoadRequestKey(path string) (*RequestKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("sigil: request key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sigil: request key %s: mode %#o gives group or others access; chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sigil: request key: %w", err)
	}
	k, err := ParseRequestKey(data)
	if err != nil {
		return nil, fmt.Errorf("sigil: request key %s: %w", path, err)
	}
	return k, nil
}

// ParseRequestKey reads a PKCS #8 PEM Ed25519 or ECDSA P-256 private key.
func ParseRequestKey(pemBytes []byte) (*RequestKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" (PKCS #8) block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return &RequestKey{algorithm: walletv1.RequestKeyAlgorithm_REQUEST_KEY_ALGORITHM_ED25519, name: "ed25519",
			signer: k, public: bytes.Clone(k.Public().(ed25519.PublicKey))}, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("an ECDSA request key must be on P-256")
		}
		pub, err := k.PublicKey.Bytes()
		if err != nil {
			return nil, err
		}
		return &RequestKey{algorithm: walletv1.RequestKeyAlgorithm_REQUEST_KEY_ALGORITHM_ECDSA_P256_SHA256, name: "ecdsa-p256-sha256",
			signer: k, public: pub}, nil
	default:
		return nil, fmt.Errorf("request keys are Ed25519 or ECDSA P-256, not %T", key)
	}
}

// PublicKey returns the raw public key (32 bytes Ed25519, 65 bytes P-256).
func (k *RequestKey) PublicKey() []byte { return bytes.Clone(k.public) }

// Sign sets req.RequestSignature: a signature over the canonical bytes of
// req's wallet, kind, digest and external id, requestID and the time now
// (in milliseconds). requestID must be fresh for each request (1 to 128
// letters, digits or ._:-); a random one is used when it is empty.
func (k *RequestKey) Sign(req *walletv1.CreateSignatureRequest, requestID string, now time.Time) error {
	if requestID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		requestID = "req_" + hex.EncodeToString(b[:])
	}
	kind, digest, err := requestDigest(req)
	if err != nil {
		return err
	}
	ms := now.UnixMilli()
	msg := canonicalRequest(k.name, k.public, requestID, ms, req.GetWalletId(), kind, digest, req.GetExternalId())
	var sig []byte
	switch s := k.signer.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(s, msg)
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		r, ss, err := ecdsa.Sign(rand.Reader, s, h[:])
		if err != nil {
			return err
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
	}
	req.RequestSignature = &walletv1.RequestSignature{
		RequestId: requestID, CreateTime: timestamppb.New(time.UnixMilli(ms)), Algorithm: k.algorithm,
		PublicKey: bytes.Clone(k.public), Signature: sig,
	}
	return nil
}

// requestDigest is the kind and digest the coordinator and the signers
// compute from the payload.
func requestDigest(req *walletv1.CreateSignatureRequest) (string, []byte, error) {
	switch p := req.GetPayload().(type) {
	case *walletv1.CreateSignatureRequest_Hash:
		return "hash", p.Hash, nil
	case *walletv1.CreateSignatureRequest_Message:
		h := sha3.NewLegacyKeccak256()
		h.Write([]byte("\x19Ethereum Signed Message:\n" + strconv.Itoa(len(p.Message)) + p.Message))
		return "eip191", h.Sum(nil), nil
	case *walletv1.CreateSignatureRequest_RawMessage:
		// Ed25519 signs the message itself; the request binds its SHA-256.
		h := sha256.Sum256(p.RawMessage)
		return "raw-message", h[:], nil
	default:
		return "", nil, errors.New("nothing to sign: set a hash or a message before signing the request")
	}
}

// canonicalRequest is the canonical request encoding, version 1: the
// domain, then each field as a 4-byte big-endian length and its bytes.
func canonicalRequest(alg string, pub []byte, requestID string, ms int64, walletID, kind string, digest []byte, externalID string) []byte {
	var b bytes.Buffer
	b.WriteString(requestDomain)
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(ms))
	for _, f := range [][]byte{[]byte(alg), pub, []byte(requestID), t[:], []byte(walletID), []byte(kind), digest, []byte(externalID)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		b.Write(n[:])
		b.Write(f)
	}
	return b.Bytes()
}
