package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// TokenAdmin is what `sigil token list` and `sigil token revoke` need.
type TokenAdmin interface {
	// ListTokens returns every token, oldest first, revoked ones included.
	ListTokens(ctx context.Context) ([]*Token, error)
	// RevokeToken marks a token revoked from now on and returns it;
	// revoking a revoked token keeps its first revocation time. An unknown
	// id is ErrNotFound.
	RevokeToken(ctx context.Context, id string) (*Token, error)
}

// ListTokens returns every token. See TokenAdmin.
func (s *SQL) ListTokens(ctx context.Context) ([]*Token, error) {
	var rows []tokenRow
	err := s.db.SelectContext(ctx, &rows,
		`SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("select tokens: %w", err)
	}
	out := make([]*Token, len(rows))
	for i := range rows {
		out[i] = rows[i].token()
	}
	return out, nil
}

// RevokeToken revokes a token. See TokenAdmin.
func (s *SQL) RevokeToken(ctx context.Context, id string) (*Token, error) {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(
		`UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), micros(s.now().UTC()), id)
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	var r tokenRow
	err = s.db.GetContext(ctx, &r, s.db.Rebind(
		`SELECT `+tokenColumns+` FROM api_tokens WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("select token: %w", err)
	}
	return r.token(), nil
}

const tokenColumns = `id, hash, scopes, description, tenant, created_at, revoked_at` //nolint:gosec // G101: column names, not a credential

func (r *tokenRow) token() *Token {
	t := &Token{ID: r.ID, Hash: r.Hash, Scopes: strings.Fields(r.Scopes), Description: r.Description, Tenant: r.Tenant,
		CreatedAt: fromMicros(r.CreatedAt)}
	if r.RevokedAt.Valid {
		rt := fromMicros(r.RevokedAt.Int64)
		t.RevokedAt = &rt
	}
	return t
}
