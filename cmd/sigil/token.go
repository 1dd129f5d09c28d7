package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/store"
)

func tokenCreateCommand() *command {
	return &command{
		name:    "token create",
		summary: "create an API token and print it (alone, on stdout)",
		usage: `Creates an API token with the given scopes directly in the coordinator's
database and prints it alone on stdout; only its hash is stored, so it cannot
be shown again. Scopes: wallets:read, wallets:write, signatures:write, admin
(admin implies all). Example:

  TOKEN=$(sigil token create --scope wallets:read --scope signatures:write)`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var scopes listFlag
			var dataDir, dbURL, description string
			fs.Var(&scopes, "scope", "scope to grant (repeat or comma-separate): wallets:read, wallets:write, signatures:write, admin")
			fs.StringVar(&description, "description", "", "what the token is for, kept with it")
			fs.StringVar(&dataDir, "data-dir", server.DefaultDataDir, "the coordinator's --data-dir (SQLite)")
			fs.StringVar(&dbURL, "database-url", "", "the coordinator's --database-url (PostgreSQL)")
			return func() error {
				parsed, err := auth.ParseScopes(scopes)
				if err != nil {
					return fmt.Errorf("%w: --scope: %w", errUsage, err)
				}
				d, err := db.Open(env.ctx, db.Config{URL: dbURL, SQLitePath: filepath.Join(dataDir, "sigil.db")})
				if err != nil {
					return err
				}
				defer d.Close()
				st, err := store.Open(env.ctx, d)
				if err != nil {
					return err
				}
				token, err := auth.Mint(env.ctx, st, parsed, description)
				if err != nil {
					return err
				}
				fmt.Fprintln(env.stdout, token)
				return nil
			}
		},
	}
}
