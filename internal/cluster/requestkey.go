package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigil-wallet/sigil/internal/reqsig"
)

// DevRequestKeyName is the dev request key's name in the trust list.
const DevRequestKeyName = "dev"

// EnsureDevRequestKey makes (once) the dev request key in dir,
// request-key.pem (mode 0600), and trusted-request-keys, the list that
// trusts it, and returns both paths. The key is ECDSA P-256, which every
// browser's WebCrypto signs with.
func EnsureDevRequestKey(dir string) (keyFile, trustedFile string, err error) {
	keyFile, trustedFile = filepath.Join(dir, "request-key.pem"), filepath.Join(dir, "trusted-request-keys")
	k, err := reqsig.LoadPrivateKeyFile(keyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if k, err = reqsig.GenerateKey(reqsig.ECDSAP256); err != nil {
			return "", "", err
		}
		pemBytes, err := k.MarshalPEM()
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
			return "", "", err
		}
	case err != nil:
		return "", "", fmt.Errorf("dev request key: %w", err)
	}
	line := fmt.Sprintf("# The request keys the dev signers and driver trust (sigil dev --require-signed-requests).\n%s %s\n", DevRequestKeyName, k.PublicText())
	if err := os.WriteFile(trustedFile, []byte(line), 0o600); err != nil {
		return "", "", err
	}
	return keyFile, trustedFile, nil
}
