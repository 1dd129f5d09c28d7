// Package store is the coordinator's durable state: API tokens, wallets,
// signature requests, the MPC ceremonies and HSM jobs that serve them, and
// the relay's sealed messages. One SQL implementation serves SQLite and
// PostgreSQL; each interface below is what one handler needs, and each has a
// conformance suite in storetest that runs against both databases.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. The API layer maps them to Connect codes in one place.
var (
	// ErrNotFound: no row with that id.
	ErrNotFound = errors.New("not found")
	// ErrIdempotencyConflict: the external_id is taken by a different request.
	ErrIdempotencyConflict = errors.New("external_id already used by a different request")
	// ErrWalletNotActive: a signature was asked of a wallet that cannot sign.
	ErrWalletNotActive = errors.New("wallet is not active")
	// ErrStateConflict: the row is no longer in the state the change needs
	// (a lapsed lease, a ceremony already ended, a result already recorded).
	ErrStateConflict = errors.New("state conflict")
	// ErrNotLeaseHolder: a job's lease is held by another driver than the
	// caller.
	ErrNotLeaseHolder = errors.New("lease held by another driver")
	// ErrLeaseLost: a ceremony's lease moved to another replica (or a
	// newer epoch) since the caller took it. It wraps ErrStateConflict.
	ErrLeaseLost = fmt.Errorf("%w: ceremony lease lost", ErrStateConflict)
	// ErrSignerBusy: a signer runs as many ceremonies as it may
	// (StartLeased's bound).
	ErrSignerBusy = errors.New("signer runs its most ceremonies already")
	// ErrQuotaExceeded: a signer sent more to the relay than its ceremony
	// needs (see QuotaError).
	ErrQuotaExceeded = errors.New("relay quota exceeded")
)

// Backend is where a wallet's key lives.
type Backend string

// Backends.
const (
	BackendMPC Backend = "mpc"
	BackendHSM Backend = "hsm"
)

// Key schemes, as stored and as signers name them.
const (
	// KeySchemeSecp256k1 is ECDSA over secp256k1 (CMP).
	KeySchemeSecp256k1 = "ecdsa-secp256k1"
	// KeySchemeSchnorr is BIP-340 Schnorr over secp256k1 for Taproot (FROST).
	KeySchemeSchnorr = "schnorr-secp256k1"
	// KeySchemeEd25519 is Ed25519 (FROST-Ed25519).
	KeySchemeEd25519 = "ed25519"
)

// PublicKeyLen is the length of a wallet's public key in a scheme: SEC1
// compressed for ECDSA, x-only for Schnorr, RFC 8032 for Ed25519.
func PublicKeyLen(scheme string) int {
	switch scheme {
	case KeySchemeSchnorr, KeySchemeEd25519:
		return 32
	default:
		return 33
	}
}

// WalletStatus is where a wallet is in its life.
type WalletStatus string

// Wallet statuses.
const (
	WalletCreating WalletStatus = "creating"
	WalletActive   WalletStatus = "active"
	WalletFailed   WalletStatus = "failed"
)

// Wallet is one key.
type Wallet struct {
	Seq int64
	ID  string
	// Owner made the wallet and owns its ExternalID: an API token id, or
	// "tenant:<name>" (see auth.Principal.Owner). Empty for wallets made
	// before owners were recorded.
	Owner         string
	ExternalID    string
	RequestHash   []byte // fingerprint of the creating request, for idempotency
	Name          string
	Backend       Backend
	KeyScheme     string
	Status        WalletStatus
	FailureReason string
	PublicKey     []byte // set when active; see PublicKeyLen
	Threshold     int    // MPC: t
	Signers       []string
	// BIP-32: the chain code of the key (secp256k1 schemes, MPC), and for a
	// child wallet its parent and path (the child's own chain code is not
	// kept: children have no children).
	ChainCode      []byte
	ParentWalletID string
	DerivationPath string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// SignatureKind is what was given to sign.
type SignatureKind string

// Signature kinds.
const (
	KindHash   SignatureKind = "hash"
	KindEIP191 SignatureKind = "eip191"
	// KindRaw is message bytes signed as they are (Ed25519).
	KindRaw SignatureKind = "raw"
)

// SignatureStatus is where a signature request is in its life.
type SignatureStatus string

// Signature statuses.
const (
	SignaturePending  SignatureStatus = "pending"
	SignatureSigned   SignatureStatus = "signed"
	SignatureRejected SignatureStatus = "rejected"
	SignatureFailed   SignatureStatus = "failed"
)

// Signature is one signature request and its result.
type Signature struct {
	Seq int64
	ID  string
	// Owner made the request and owns its ExternalID, as for wallets.
	Owner         string
	ExternalID    string
	RequestHash   []byte
	WalletID      string
	Kind          SignatureKind
	Hash          []byte
	Message       string
	RawMessage    []byte // KindRaw
	KeyScheme     string // the signing wallet's scheme: how R and S encode the result
	Digest        []byte // empty for KindRaw
	Status        SignatureStatus
	FailureReason string
	R, S          []byte // 32 bytes each once signed: ECDSA r and s (S low), or the two halves of a 64-byte Schnorr or Ed25519 signature
	RecoveryID    int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// RequestID and RequesterKey identify the application's request
	// signature; SignedRequest is the signed-request envelope (reqsig)
	// handed to signers and drivers. All empty for an unsigned request.
	RequestID     string
	RequesterKey  string
	SignedRequest []byte
}

// Token is an API token as stored: only its hash, never the token.
type Token struct {
	ID          string
	Hash        []byte
	Scopes      []string
	Description string
	// Tenant groups tokens that share external ids; empty: none.
	Tenant    string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// CeremonyKind is the protocol a ceremony runs.
type CeremonyKind string

// Ceremony kinds.
const (
	CeremonyKeygen CeremonyKind = "keygen"
	CeremonySign   CeremonyKind = "sign"
)

// CeremonyState is where a ceremony is in its life.
type CeremonyState string

// Ceremony states. A ceremony waits until the orchestrator picks its parties
// and starts it; it then runs until every party reports or it times out.
const (
	CeremonyWaiting   CeremonyState = "waiting"
	CeremonyRunning   CeremonyState = "running"
	CeremonySucceeded CeremonyState = "succeeded"
	CeremonyFailed    CeremonyState = "failed"
)

// Ceremony is one run of an MPC protocol for a wallet or a signature.
type Ceremony struct {
	Seq          int64
	ID           string
	Kind         CeremonyKind
	KeyScheme    string // the wallet's key scheme; with Kind, selects the protocol
	WalletID     string
	SignatureID  string // signing kinds only
	State        CeremonyState
	Threshold    int
	GroupSigners []string // all n signers of the wallet's group
	Parties      []string // the signers running it, set when it starts
	Excluded     []string // signers left out after failing an earlier attempt
	// PresignatureID is the presignature a signing ceremony runs its
	// online round with (empty: the full protocol).
	PresignatureID string
	Attempt        int
	Deadline       time.Time // zero until started
	FailureReason  string
	// Lease is the replica that drives the ceremony while it runs (see
	// Leases); zero while it waits.
	Lease     Lease
	CreatedAt time.Time
	UpdatedAt time.Time
}

// JobKind is what an HSM job asks of a driver.
type JobKind string

// Job kinds.
const (
	JobKeygen JobKind = "keygen"
	JobSign   JobKind = "sign"
)

// JobState is where a job is in its life.
type JobState string

// Job states.
const (
	JobQueued JobState = "queued"
	JobLeased JobState = "leased"
	JobDone   JobState = "done"
	JobFailed JobState = "failed"
)

// Job is one unit of HSM work.
type Job struct {
	Seq            int64
	ID             string
	Kind           JobKind
	WalletID       string
	SignatureID    string
	State          JobState
	Attempts       int
	LeaseID        string
	LeasedBy       string
	LeasedAt       time.Time // when the current lease was granted; renewals never outlive LeasedAt + the maximum lease life
	LeaseExpiresAt time.Time
	AvailableAt    time.Time
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Work is what a backend must do for a new wallet or signature: exactly one
// of a ceremony (MPC) or a job (HSM), recorded in the same transaction.
type Work struct {
	Ceremony *Ceremony
	Job      *Job
}

// Page asks for rows after a sequence number.
type Page struct {
	AfterSeq int64
	Limit    int
}

// WalletFilter narrows ListWallets.
type WalletFilter struct {
	Status         WalletStatus // empty: all
	ParentWalletID string       // empty: all
}

// SignatureFilter narrows ListSignatures.
type SignatureFilter struct {
	WalletID string // empty: all
}

// Tokens stores API tokens.
type Tokens interface {
	CreateToken(ctx context.Context, t *Token) error
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
}

// Wallets is what the wallet API needs of wallets.
type Wallets interface {
	// CreateWallet inserts w and its work in one transaction. With an
	// external id w.Owner already used it returns the existing wallet and
	// false when the request hashes match, ErrIdempotencyConflict otherwise.
	// External ids are scoped to their owner: another owner's same external
	// id is a different wallet.
	CreateWallet(ctx context.Context, w *Wallet, work Work) (*Wallet, bool, error)
	GetWallet(ctx context.Context, id string) (*Wallet, error)
	ListWallets(ctx context.Context, f WalletFilter, p Page) ([]*Wallet, error)
}

// Signatures is what the wallet API needs of signature requests.
type Signatures interface {
	// CreateSignature inserts s and its work in one transaction, after
	// checking the wallet exists (ErrNotFound) and is active
	// (ErrWalletNotActive). Idempotency works as in CreateWallet.
	CreateSignature(ctx context.Context, s *Signature, work Work) (*Signature, bool, error)
	GetSignature(ctx context.Context, id string) (*Signature, error)
	ListSignatures(ctx context.Context, f SignatureFilter, p Page) ([]*Signature, error)
}

// WalletOutcomes is how a backend finishes a wallet's key generation. Only
// the MPC orchestrator and the HSM job queue call it, after a real key
// backend produced (and the coordinator checked) the public key.
type WalletOutcomes interface {
	// ActivateWallet moves a creating wallet to active with its public key.
	ActivateWallet(ctx context.Context, id string, publicKey []byte) error
	// FailWallet moves a creating wallet to failed with a reason.
	FailWallet(ctx context.Context, id string, reason string) error
}

// Store is every interface of the coordinator's state.
type Store interface {
	Tokens
	TokenAdmin
	Wallets
	Signatures
	WalletOutcomes
	Ceremonies
	Presignatures
	KeyPool
	Relay
	Backups
	Leases
	Wakeups
}
