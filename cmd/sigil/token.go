package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/store"
)

// tokenDB are the flags naming the coordinator's database, shared by the
// token commands, which work on it directly (the coordinator may be
// running).
type tokenDB struct{ dataDir, dbURL string }

func (t *tokenDB) add(fs *flag.FlagSet) {
	fs.StringVar(&t.dataDir, "data-dir", server.DefaultDataDir, "the coordinator's --data-dir (SQLite)")
	fs.StringVar(&t.dbURL, "database-url", "", "the coordinator's --database-url (PostgreSQL); prefer SIGIL_DATABASE_URL when it holds a password")
}

// open opens and migrates the coordinator's store; close it with the
// returned function.
func (t *tokenDB) open(ctx context.Context) (*store.SQL, func() error, error) {
	d, err := db.Open(ctx, db.Config{URL: t.dbURL, SQLitePath: filepath.Join(t.dataDir, "sigil.db")})
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, d)
	if err != nil {
		_ = d.Close()
		return nil, nil, err
	}
	return st, d.Close, nil
}

func tokenCreateCommand() *command {
	return &command{
		name:    "token create",
		summary: "create an API token and print it (alone, on stdout)",
		usage: `Creates an API token with the given scopes directly in the coordinator's
database and prints it alone on stdout; only its hash is stored, so it cannot
be shown again. Its id (for "sigil token revoke") goes to stderr. Scopes:
wallets:read, wallets:write, signatures:write, admin (admin implies all).
Example:

  TOKEN=$(sigil token create --scope wallets:read --scope signatures:write)`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var scopes listFlag
			var description, tenant string
			var where tokenDB
			fs.Var(&scopes, "scope", "scope to grant (repeat or comma-separate): wallets:read, wallets:write, signatures:write, admin")
			fs.StringVar(&description, "description", "", "what the token is for, kept with it and shown by \"sigil token list\"")
			fs.StringVar(&tenant, "tenant", "", "tenant the token belongs to: tokens of one tenant share the external ids they create (a rotated token keeps replaying its predecessor's); empty: the token's external ids are its own")
			where.add(fs)
			return func() (err error) {
				if tenant != "" {
					if err := auth.ValidateTenant(tenant); err != nil {
						return fmt.Errorf("%w: --tenant: %w", errUsage, err)
					}
				}
				parsed, err := auth.ParseScopes(scopes)
				if err != nil {
					return fmt.Errorf("%w: --scope: %w", errUsage, err)
				}
				st, closeDB, err := where.open(env.ctx)
				if err != nil {
					return err
				}
				defer func() { err = errors.Join(err, closeDB()) }()
				token, id, err := auth.MintWithID(env.ctx, st, auth.MintOptions{Scopes: parsed, Description: description, Tenant: tenant})
				if err != nil {
					return err
				}
				fmt.Fprintln(env.stdout, token)
				fmt.Fprintf(env.stderr, "token id %s (revoke it with: sigil token revoke --id %s)\n", id, id)
				return nil
			}
		},
	}
}

func tokenListCommand() *command {
	return &command{
		name:    "token list",
		summary: "list API tokens: id, scopes, tenant, creation, revocation, description",
		usage: `Lists the API tokens in the coordinator's database, oldest first, revoked
ones included. Tokens themselves are never stored, so they cannot be shown:
each is listed by its id.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var where tokenDB
			where.add(fs)
			return func() (err error) {
				st, closeDB, err := where.open(env.ctx)
				if err != nil {
					return err
				}
				defer func() { err = errors.Join(err, closeDB()) }()
				tokens, err := st.ListTokens(env.ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSCOPES\tTENANT\tCREATED\tREVOKED\tDESCRIPTION")
				for _, t := range tokens {
					revoked := "-"
					if t.RevokedAt != nil {
						revoked = t.RevokedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, joinOr(t.Scopes, "-"), or(t.Tenant, "-"), t.CreatedAt.Format(time.RFC3339), revoked, t.Description)
				}
				return tw.Flush()
			}
		},
	}
}

func tokenRevokeCommand() *command {
	return &command{
		name:    "token revoke",
		summary: "revoke an API token by id: its next call is refused (UNAUTHENTICATED, TOKEN_REVOKED)",
		usage: `Revokes an API token, found by the id "sigil token create" and "sigil token
list" show. The coordinator checks tokens on every call, so the next call with
it is refused with UNAUTHENTICATED and the reason ERROR_REASON_TOKEN_REVOKED,
on every replica, without a restart. Revoking is final.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var id string
			var where tokenDB
			fs.StringVar(&id, "id", "", "the token's id (tok_...), as \"sigil token list\" shows it")
			where.add(fs)
			return func() (err error) {
				if !ids.Valid(ids.Token, id) {
					return fmt.Errorf("%w: --id %q: want a token id like tok_... (see \"sigil token list\")", errUsage, id)
				}
				st, closeDB, err := where.open(env.ctx)
				if err != nil {
					return err
				}
				defer func() { err = errors.Join(err, closeDB()) }()
				t, err := st.RevokeToken(env.ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "revoked %s at %s\n", t.ID, t.RevokedAt.Format(time.RFC3339))
				return nil
			}
		},
	}
}

func or(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

func joinOr(s []string, empty string) string {
	if len(s) == 0 {
		return empty
	}
	return strings.Join(s, ",")
}
