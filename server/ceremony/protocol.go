package ceremony

import (
	"context"
	"fmt"
	"time"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

// Protocol is one ceremony kind of one key scheme as the coordinator runs
// it: it plans the parties, accepts and checks the signers' reports, and
// says what the ceremony's end does to its wallet or signature. The
// orchestrator owns everything common (presence, deadlines, retries,
// blame, persistence); a new kind is a new Protocol in the Registry.
type Protocol interface {
	// Name names the ceremony in reasons given to applications
	// ("key generation", "signing").
	Name() string
	// Kind is the kind signers are told to run.
	Kind() ceremonyv1.CeremonyKind
	// Plan chooses the parties of a waiting ceremony.
	Plan(env PlanEnv, c *store.Ceremony) Plan
	// Describe completes the signers' view of c with what they need to
	// check and run it.
	Describe(ctx context.Context, s Store, c *store.Ceremony, out *ceremonyv1.Ceremony) error
	// Output extracts a party's result from its report; its error says
	// what is wrong with the report.
	Output(req *ceremonyv1.CompleteCeremonyRequest) ([]byte, error)
	// Decide looks at the successful reports so far. It returns nil to
	// wait for more.
	Decide(ctx context.Context, s Store, c *store.Ceremony, reports []*store.CeremonyReport) (*Verdict, error)
	// Retries reports whether a failed attempt is tried again with
	// another quorum (signing) or fails the ceremony (key generation).
	Retries() bool
	// Failed is what a failed ceremony does to its wallet or signature;
	// rejected is true when a signer refused the request.
	Failed(c *store.Ceremony, reason string, rejected bool) *store.CeremonyFinish
}

// PlanEnv is what a Protocol plans from.
type PlanEnv struct {
	Now time.Time
	// Since is when the ceremony last left the scheduler's queue (its
	// request time if never queued): waits for signers count from it, so
	// time queued behind other ceremonies is not held against it.
	Since time.Time
	// Online are the ceremony's group signers with a stream open and room
	// for one more ceremony, in group order.
	Online []string
	Config *Config
	// Presignature, when not nil, takes a presignature of the ceremony's
	// wallet whose quorum is among usable, for good (nil: none fits).
	Presignature func(usable []string) *store.Presignature
}

// Plan is a Protocol's choice for a waiting ceremony: its parties and
// deadline, nothing yet (Parties nil), or give up (Fail set).
type Plan struct {
	Parties  []string
	Deadline time.Time
	Fail     string
	// Presignature is the presignature the parties sign with, if any.
	Presignature string
}

// Verdict is a Protocol's decision on the reports of a ceremony: success
// with the change it makes, or a failed attempt blaming Faulty.
type Verdict struct {
	Success *store.CeremonyFinish
	Reason  string
	Faulty  []string
}

// protocolKey selects a Protocol.
type protocolKey struct {
	scheme string
	kind   store.CeremonyKind
}

// Registry maps (key scheme, ceremony kind) to its Protocol.
type Registry struct {
	m map[protocolKey]Protocol
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[protocolKey]Protocol{}} }

// DefaultRegistry holds every protocol this coordinator runs.
func DefaultRegistry() *Registry {
	r := NewRegistry()
	r.Register(store.KeySchemeSecp256k1, store.CeremonyKeygen, ecdsaKeygen{})
	r.Register(store.KeySchemeSecp256k1, store.CeremonySign, ecdsaSign{})
	r.Register(store.KeySchemeSecp256k1, store.CeremonyPresign, ecdsaPresign{})
	registerSchemes(r)
	return r
}

// Register adds p for scheme and kind, replacing any earlier one.
func (r *Registry) Register(scheme string, kind store.CeremonyKind, p Protocol) {
	r.m[protocolKey{scheme, kind}] = p
}

// Lookup returns the Protocol of a ceremony.
func (r *Registry) Lookup(c *store.Ceremony) (Protocol, error) {
	scheme := c.KeyScheme
	if scheme == "" {
		scheme = store.KeySchemeSecp256k1
	}
	p, ok := r.m[protocolKey{scheme, c.Kind}]
	if !ok {
		return nil, fmt.Errorf("ceremony %s: no protocol for kind %q of key scheme %q", c.ID, c.Kind, scheme)
	}
	return p, nil
}
