package guard

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/gate"
	"github.com/sigil-wallet/sigil/internal/journal"
	"github.com/sigil-wallet/sigil/internal/reqsig"
)

// Settings are a node's signing-policy flags.
type Settings struct {
	// TrustedRequestKeysFile (--trusted-request-keys) lists the request
	// keys the node trusts; with it, or RequireSignedRequests, every
	// request must be signed by one of them.
	TrustedRequestKeysFile string
	RequireSignedRequests  bool
	// RequestMaxAge bounds a signed request's age (default
	// reqsig.DefaultMaxAge).
	RequestMaxAge time.Duration
	// Gate is the validation gate; no URL means none.
	Gate gate.Config
}

// Open builds a node's guard from its settings, with the journal in the
// node's own database d (open it durable).
func Open(ctx context.Context, s Settings, node string, d *db.DB, logger *slog.Logger) (*Guard, *journal.Journal, error) {
	policy, err := reqsig.NodePolicy(s.TrustedRequestKeysFile, s.RequireSignedRequests, s.RequestMaxAge)
	if err != nil {
		return nil, nil, err
	}
	var gc *gate.Client
	switch {
	case s.Gate.URL != "":
		if gc, err = gate.New(s.Gate); err != nil {
			return nil, nil, err
		}
	case s.Gate.SecretFile != "":
		return nil, nil, errors.New("--validation-gate-secret-file without --validation-gate-url")
	}
	j, err := journal.Open(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger.InfoContext(ctx, "signing policy", "trusted_request_keys", policy.Trusted.Len(), "signed_requests_required", policy.Required(),
		"validation_gate", gc != nil)
	return New(Config{Node: node, Policy: policy, Gate: gc, Journal: j, Logger: logger}), j, nil
}
