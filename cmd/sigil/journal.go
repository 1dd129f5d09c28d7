package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/journal"
)

// journalRole is where a node keeps its journal: the SQLite file under
// --data-dir, or --database-url.
type journalRole struct {
	cmd, node, dataDir, sqliteFile string
}

var (
	signerJournal = journalRole{cmd: "signer", node: "signer", dataDir: "./sigil-signer", sqliteFile: "shares.db"}
	driverJournal = journalRole{cmd: "hsm-driver", node: "HSM driver", dataDir: "./sigil-hsm-driver", sqliteFile: "hsm-driver.db"}
)

func signerJournalVerifyCommand() *command    { return journalVerifyCommand(signerJournal) }
func signerJournalListCommand() *command      { return journalListCommand(signerJournal) }
func hsmDriverJournalVerifyCommand() *command { return journalVerifyCommand(driverJournal) }
func hsmDriverJournalListCommand() *command   { return journalListCommand(driverJournal) }

// openJournal declares the database flags and returns the opener.
func (r journalRole) flags(fs *flag.FlagSet, env *cliEnv) func() (*journal.Journal, func() error, error) {
	var dataDir, url string
	fs.StringVar(&dataDir, "data-dir", r.dataDir, "the "+r.node+"'s data folder (its SQLite database "+r.sqliteFile+")")
	fs.StringVar(&url, "database-url", "", "the "+r.node+"'s PostgreSQL database (postgres://...); empty uses SQLite in --data-dir")
	return func() (*journal.Journal, func() error, error) {
		d, err := db.Open(env.ctx, db.Config{URL: url, SQLitePath: filepath.Join(dataDir, r.sqliteFile)})
		if err != nil {
			return nil, nil, err
		}
		j, err := journal.Open(env.ctx, d)
		if err != nil {
			_ = d.Close()
			return nil, nil, err
		}
		return j, d.Close, nil
	}
}

func journalVerifyCommand(r journalRole) *command {
	return &command{
		name:    r.cmd + " journal verify",
		summary: "recompute the " + r.node + "'s decision journal hash chain and report the first broken record",
		usage: `Reads every record of the ` + r.node + `'s journal (one per decision on a signature
request: signed, or refused and why), recomputes each record's hash and its
link to the one before, and reports the first record that was changed,
inserted or removed. Exit status 1 when the chain is broken. Run it on a
copy of the database or while the ` + r.node + ` runs; it only reads.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			open := r.flags(fs, env)
			return func() error {
				j, closeDB, err := open()
				if err != nil {
					return err
				}
				defer func() { _ = closeDB() }()
				entries, err := j.List(env.ctx)
				if err != nil {
					return err
				}
				if b := journal.Check(entries); b != nil {
					return fmt.Errorf("journal broken: %w", b)
				}
				last := "(empty)"
				if len(entries) > 0 {
					last = entries[len(entries)-1].Hash
				}
				fmt.Fprintf(env.stdout, "journal intact: %d records, last hash %s\n", len(entries), last)
				return nil
			}
		},
	}
}

func journalListCommand(r journalRole) *command {
	return &command{
		name:    r.cmd + " journal list",
		summary: "print the " + r.node + "'s decision journal",
		usage:   `Prints every record of the ` + r.node + `'s journal, oldest first: one line each, or a JSON array with --json.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			open := r.flags(fs, env)
			var asJSON bool
			fs.BoolVar(&asJSON, "json", false, "print a JSON array of records")
			return func() error {
				j, closeDB, err := open()
				if err != nil {
					return err
				}
				defer func() { _ = closeDB() }()
				entries, err := j.List(env.ctx)
				if err != nil {
					return err
				}
				if asJSON {
					if entries == nil {
						entries = []journal.Entry{}
					}
					enc := json.NewEncoder(env.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(entries)
				}
				for _, e := range entries {
					fmt.Fprintf(env.stdout, "%d %s %s %s signature=%s wallet=%s request=%s key=%s %s\n", e.Seq, e.At.Format("2006-01-02T15:04:05.000Z"),
						e.Node, e.Decision, e.SignatureID, e.WalletID, e.RequestID, e.RequesterKey, e.Reason)
				}
				return nil
			}
		},
	}
}
