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
	token, _, err := MintWithID(ctx, tokens, scopes, description)
	return token, err
}

// MintWithID is Mint that also returns the token's id, by which it is
// listed and revoked.
func MintWithID(ctx context.Context, tokens store.Tokens, scopes []Scope, description string) (token, id string, err error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	token = tokenPrefix + strings.ToLower(tokenEncoding.EncodeToString(raw[:]))
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	id = ids.New(ids.Token)
	if err := tokens.CreateToken(ctx, &store.Token{ID: id, Hash: Hash(token), Scopes: names, Description: description}); err != nil {
		return "", "", err
	}
	return token, id, nil
}

// Principal is the authenticated caller of an API request.
type Principal struct {
	TokenID string
	Scopes  []Scope
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
