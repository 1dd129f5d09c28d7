package sigil

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
)

// The golden vectors shared with the verifiers (internal/reqsig) and the
// TypeScript SDK.
type goldenVectors struct {
	Keys []struct {
		Name          string `json:"name"`
		PrivateKeyPEM string `json:"private_key_pem"`
	} `json:"keys"`
	Vectors []struct {
		Key          string `json:"key"`
		RequestID    string `json:"request_id"`
		CreateTimeMs int64  `json:"create_time_ms"`
		WalletID     string `json:"wallet_id"`
		Kind         string `json:"kind"`
		Hash         string `json:"hash_hex"`
		Message      string `json:"message"`
		ExternalID   string `json:"external_id"`
		Canonical    string `json:"canonical_hex"`
		Signature    string `json:"signature_hex"`
	} `json:"vectors"`
}

func TestRequestKeyGoldenVectors(t *testing.T) {
	b, err := os.ReadFile("../testdata/request-signing-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenVectors
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*RequestKey{}
	for _, k := range g.Keys {
		if keys[k.Name], err = ParseRequestKey([]byte(k.PrivateKeyPEM)); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range g.Vectors {
		t.Run(v.RequestID, func(t *testing.T) {
			k := keys[v.Key]
			req := &walletv1.CreateSignatureRequest{WalletId: v.WalletID, ExternalId: v.ExternalID}
			if v.Kind == "hash" {
				h, _ := hex.DecodeString(v.Hash)
				req.Payload = &walletv1.CreateSignatureRequest_Hash{Hash: h}
			} else {
				req.Payload = &walletv1.CreateSignatureRequest_Message{Message: v.Message}
			}
			if err := k.Sign(req, v.RequestID, time.UnixMilli(v.CreateTimeMs)); err != nil {
				t.Fatal(err)
			}
			rs := req.GetRequestSignature()
			kind, digest, _ := requestDigest(req)
			msg := canonicalRequest(k.name, rs.GetPublicKey(), rs.GetRequestId(), rs.GetCreateTime().AsTime().UnixMilli(), v.WalletID, kind, digest, v.ExternalID)
			if got := hex.EncodeToString(msg); got != v.Canonical {
				t.Fatalf("canonical bytes\n%s\nwant\n%s", got, v.Canonical)
			}
			switch k.algorithm {
			case walletv1.RequestKeyAlgorithm_REQUEST_KEY_ALGORITHM_ED25519:
				// Ed25519 is deterministic: the very signature of the vector.
				if hex.EncodeToString(rs.GetSignature()) != v.Signature || !ed25519.Verify(rs.GetPublicKey(), msg, rs.GetSignature()) {
					t.Fatal("Ed25519 signature differs from the vector")
				}
			default:
				pub, err := ecdsa.ParseUncompressedPublicKey(k.signer.(*ecdsa.PrivateKey).Curve, rs.GetPublicKey())
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.Sum256(msg)
				sig := rs.GetSignature()
				if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
					t.Fatal("P-256 signature does not verify")
				}
			}
		})
	}
}

func TestLoadRequestKeyRefusesOpenFiles(t *testing.T) {
	b, _ := os.ReadFile("../testdata/request-signing-vectors.json")
	var g goldenVectors
	_ = json.Unmarshal(b, &g)
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, []byte(g.Keys[0].PrivateKeyPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRequestKey(path); err == nil {
		t.Fatal("a world-readable request key was loaded")
	}
	_ = os.Chmod(path, 0o600)
	if _, err := LoadRequestKey(path); err != nil {
		t.Fatal(err)
	}
}
