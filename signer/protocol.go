package signer

import (
	"context"
	"fmt"

	"github.com/taurusgroup/multi-party-sig/pkg/party"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
)

// schemeSecp256k1 is ECDSA over secp256k1, the scheme of a ceremony that
// names none.
const schemeSecp256k1 = "ecdsa-secp256k1"

// ceremonyProtocol is one ceremony kind of one key scheme as this signer runs it:
// it starts the multi-party-sig protocol and stores what it yields before
// the report leaves. A new kind is a new protocol in the registry.
type ceremonyProtocol interface {
	// label names the kind in metrics and logs ("keygen", "sign").
	label() string
	// run checks the ceremony, runs the protocol over tr, stores its
	// result durably and returns the report.
	run(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, parties []party.ID, tr *relayTransport) (*ceremonyv1.CompleteCeremonyRequest, error)
	// settle learns how the ceremony ended after this signer reported (or
	// that its report came too late), to keep or drop what run stored.
	settle(ctx context.Context, s *Signer, c *ceremonyv1.Ceremony, state ceremonyv1.CeremonyState)
}

type protocolKey struct {
	scheme string
	kind   ceremonyv1.CeremonyKind
}

// protocols maps (key scheme, ceremony kind) to what this signer runs.
type protocols map[protocolKey]ceremonyProtocol

func defaultProtocols() protocols {
	p := protocols{
		{schemeSecp256k1, ceremonyv1.CeremonyKind_CEREMONY_KIND_KEYGEN}:  cmpKeygen{},
		{schemeSecp256k1, ceremonyv1.CeremonyKind_CEREMONY_KIND_SIGN}:    cmpSign{},
		{schemeSecp256k1, ceremonyv1.CeremonyKind_CEREMONY_KIND_PRESIGN}: cmpPresign{},
	}
	registerSchemes(p)
	return p
}

// lookup returns the protocol of c.
func (p protocols) lookup(c *ceremonyv1.Ceremony) (ceremonyProtocol, error) {
	scheme := c.GetKeyScheme()
	if scheme == "" {
		scheme = schemeSecp256k1
	}
	h, ok := p[protocolKey{scheme, c.GetKind()}]
	if !ok {
		return nil, fmt.Errorf("%w: this signer runs no %v ceremony for key scheme %q", errUnsupported, c.GetKind(), scheme)
	}
	return h, nil
}
