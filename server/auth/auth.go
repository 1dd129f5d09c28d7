// Package auth authenticates applications on the API port with bearer API
// tokens. A token is 256 random bits shown once at creation; the server keeps
// only its SHA-256 hash (the token's entropy makes a slow hash pointless) and
// its scopes. Tokens are an API-port concept only: the node port
// authenticates signers and drivers by certificate and refuses tokens.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

// Scope is a permission a token carries.
type Scope string

// Scopes. Admin implies every other scope.
const (
	ScopeWalletsRead     Scope = "wallets:read"
	ScopeWalletsWrite    Scope = "wallets:write"
	ScopeSignaturesWrite Scope = "signatures:write"
	ScopeAdmin           Scope = "admin"
)

// AllScopes lists the scopes in the order --help shows them.
var AllScopes = []Scope{ScopeWalletsRead, ScopeWalletsWrite, ScopeSignaturesWrite, ScopeAdmin}

// tokenPrefix marks Sigil tokens so secret scanners and humans recognise
// them.
const tokenPrefix = "sgl_"

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ParseScopes checks and normalises a list of scope names.
func ParseScopes(names []string) ([]Scope, error) {
	if len(names) == 0 {
		return nil, errors.New("at least one scope is needed")
	}
	var out []Scope
	for _, n := range names {
		s := Scope(strings.TrimSpace(n))
		if !slices.Contains(AllScopes, s) {
			return nil, fmt.Errorf("unknown scope %q (known: %s)", n, joinScopes(AllScopes))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func joinScopes(s []Scope) string {
	names := make([]string, len(s))
	for i := range s {
		names[i] = string(s[i])
	}
	return strings.Join(names, ", ")
}

// Hash returns the stored form of a token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Mint makes a new token with the given scopes and stores its hash. The
// returned token is the only copy of the secret.
func Mint(ctx context.Context, tokens store.Tokens, scopes []Scope, description string) (string, error) {
	token, _, err := MintWithID(ctx, tokens, MintOptions{Scopes: scopes, Description: description})
	return token, err
}

// MintOptions describe a new token.
type MintOptions struct {
	Scopes      []Scope
	Description string
	// Tenant, when set, makes the token share external ids with the other
	// tokens of the tenant (see Principal.Owner).
	Tenant string
}

// MintWithID is Mint with every option, and also returns the token's id,
// by which it is listed and revoked.
func MintWithID(ctx context.Context, tokens store.Tokens, o MintOptions) (token, id string, err error) {
	if o.Tenant != "" {
		if err := ValidateTenant(o.Tenant); err != nil {
			return "", "", err
		}
	}
	scopes, description := o.Scopes, o.Description
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	token = tokenPrefix + strings.ToLower(tokenEncoding.EncodeToString(raw[:]))
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	id = ids.New(ids.Token)
	if err := tokens.CreateToken(ctx, &store.Token{ID: id, Hash: Hash(token), Scopes: names, Description: description, Tenant: o.Tenant}); err != nil {
		return "", "", err
	}
	return token, id, nil
}

// Principal is the authenticated caller of an API request.
type Principal struct {
	TokenID string
	Scopes  []Scope
	// Tenant is the token's tenant, or "".
	Tenant string
}

// Owner is who owns the external ids the principal gives: its tenant when
// the token has one (tokens of a tenant share them, so a rotated token
// keeps its predecessor's), else the token itself.
func (p *Principal) Owner() string {
	if p.Tenant != "" {
		return "tenant:" + p.Tenant
	}
	return p.TokenID
}

// ValidateTenant checks a tenant name: 1 to 64 of a-z, 0-9, "-", "_", ".".
func ValidateTenant(name string) error {
	if name == "" || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		return fmt.Errorf("tenant %q: want 1 to 64 of a-z, 0-9, '-', '_', '.'", name)
	}
	return nil
}

// Has reports whether the principal holds scope s (admin holds all).
func (p *Principal) Has(s Scope) bool {
	return slices.Contains(p.Scopes, s) || slices.Contains(p.Scopes, ScopeAdmin)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller authenticated by the interceptor, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}
