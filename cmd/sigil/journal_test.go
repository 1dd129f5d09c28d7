package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/journal"
)

// TestJournalVerifyNamesTheAlteredRecord writes a signer's (and a driver's)
// journal, alters one record in its database as an intruder would, and
// checks that `sigil signer journal verify` fails naming that record,
// while `journal list --json` still prints every record.
func TestJournalVerifyNamesTheAlteredRecord(t *testing.T) {
	for _, role := range []journalRole{signerJournal, driverJournal} {
		t.Run(role.cmd, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			d, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(dir, role.sqliteFile), Durable: true})
			if err != nil {
				t.Fatal(err)
			}
			j, err := journal.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				decision := journal.RefusedGate
				if i%2 == 0 {
					decision = journal.Signed
				}
				if _, err := j.Append(ctx, journal.Entry{Node: "n1", Decision: decision, WalletID: "wal_1", SignatureID: fmt.Sprint("sig_", i)}); err != nil {
					t.Fatal(err)
				}
			}
			cli := func(args ...string) (int, string) {
				var out bytes.Buffer
				env := &cliEnv{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}
				code := run(ctx, append(strings.Fields(role.cmd+" journal"), append(args, "--data-dir", dir)...), env)
				return code, out.String()
			}
			if code, out := cli("verify"); code != 0 || !strings.Contains(out, "journal intact: 5 records") {
				t.Fatalf("intact journal: exit %d: %s", code, out)
			}
			// Turn a refusal into an approval.
			if _, err := d.ExecContext(ctx, `UPDATE journal SET decision = 'signed' WHERE seq = 4`); err != nil {
				t.Fatal(err)
			}
			_ = d.Close()
			code, out := cli("verify")
			if code != 1 || !strings.Contains(out, "journal record 4:") {
				t.Fatalf("altered journal: exit %d: %s", code, out)
			}
			code, out = cli("list", "--json")
			var entries []journal.Entry
			if code != 0 || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 5 || entries[3].Decision != journal.Signed {
				t.Fatalf("list --json: exit %d: %s", code, out)
			}
		})
	}
}
