package ethtest

import (
	"context"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	// oidECPublicKey is id-ecPublicKey from RFC 5480.
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	// oidSecp256k1 is the SEC 2 curve OID. crypto/x509 does not know
	// secp256k1, which is why the SubjectPublicKeyInfo is built by hand.
	oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

// opensslTimeout bounds one openssl run so a wedged binary fails the test
// instead of hanging the whole suite until the global test timeout.
const opensslTimeout = 30 * time.Second

// opensslOK is what `openssl pkeyutl -verify` prints on success. Both it
// and a zero exit status are required: asking for both costs nothing and
// guards against a wrapper or unusual build that gets one of them wrong.
const opensslOK = "Signature Verified Successfully"

type algorithmIdentifier struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.ObjectIdentifier // namedCurve
}

type subjectPublicKeyInfo struct {
	Algorithm algorithmIdentifier
	PublicKey asn1.BitString
}

// secp256k1PublicKeyPEM wraps a SEC1 point (compressed or not) in a PEM
// SubjectPublicKeyInfo that OpenSSL can load with -pubin.
func secp256k1PublicKeyPEM(pub []byte) ([]byte, error) {
	der, err := asn1.Marshal(subjectPublicKeyInfo{
		Algorithm: algorithmIdentifier{Algorithm: oidECPublicKey, Parameters: oidSecp256k1},
		PublicKey: asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)},
	})
	if err != nil {
		return nil, fmt.Errorf("marshal SubjectPublicKeyInfo: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// VerifyDER fails t unless the OpenSSL command line accepts der, an ASN.1
// DER ECDSA signature, over the 32-byte digest for the compressed
// secp256k1 public key pubCompressed. OpenSSL's pkeyutl treats its input as
// an already-computed digest, so nothing is hashed again.
//
// OpenSSL also rejects non-canonical DER (extra padding, wrong lengths),
// which Go's parsers sometimes tolerate, so this catches encoding bugs too.
//
// When openssl is not installed the test is skipped, except under CI=true,
// where a missing dependency must not turn into a silent pass.
func VerifyDER(t testing.TB, pubCompressed, digest, der []byte) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ethtest.VerifyDER: openssl is required under CI=true: %v", err)
		}
		t.Skipf("ethtest.VerifyDER: openssl not found, skipping cross-check: %v", err)
	}
	if len(pubCompressed) != 33 {
		t.Fatalf("ethtest.VerifyDER: public key length %d, want 33", len(pubCompressed))
	}
	if len(digest) != digestLen {
		t.Fatalf("ethtest.VerifyDER: digest length %d, want %d", len(digest), digestLen)
	}
	ctx, cancel := context.WithTimeout(t.Context(), opensslTimeout)
	defer cancel()
	if err := opensslVerify(ctx, bin, t.TempDir(), pubCompressed, digest, der); err != nil {
		t.Errorf("ethtest.VerifyDER: %v", err)
	}
}

// opensslVerify writes the inputs into dir and runs openssl pkeyutl on
// them. It returns ErrBadSignature (wrapped, with OpenSSL's output) when
// OpenSSL does not report success.
func opensslVerify(ctx context.Context, bin, dir string, pub, digest, der []byte) error {
	pubPEM, err := secp256k1PublicKeyPEM(pub)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"pub.pem", pubPEM},
		{"digest.bin", digest},
		{"sig.der", der},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}

	cmd := exec.CommandContext(ctx, bin, "pkeyutl", "-verify", "-pubin",
		"-inkey", "pub.pem", "-in", "digest.bin", "-sigfile", "sig.der")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("openssl: %w", ctxErr)
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return fmt.Errorf("run openssl: %w", err) // Could not start at all.
	}
	if err != nil || !strings.Contains(string(out), opensslOK) {
		return fmt.Errorf("%w: openssl pkeyutl (err %v): %s", ErrBadSignature, err, strings.TrimSpace(string(out)))
	}
	return nil
}
