package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ids"
)

// TestClaimWalksTheOpenJobs: with a queue of thousands of jobs that the
// planner has no statistics for yet (a burst, before autovacuum analyses
// the table), a claim still walks jobs_open oldest first and stops at its
// limit, rather than gathering and sorting the whole queue: on PostgreSQL
// the plan has no sort and no bitmap scan, and reads the index in order.
func TestClaimWalksTheOpenJobs(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, dbtest.Open(t, dialect))
			if err != nil {
				t.Fatal(err)
			}
			w := &Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: BackendHSM, KeyScheme: KeySchemeSecp256k1, Status: WalletCreating}
			first := &Job{ID: ids.New(ids.Job), Kind: JobKeygen, WalletID: w.ID, State: JobQueued}
			if _, _, err := s.CreateWallet(ctx, w, Work{Job: first}); err != nil {
				t.Fatal(err)
			}
			const queued = 3000
			var values []string
			var args []any
			now := time.Now().UnixMicro()
			for i := range queued {
				values = append(values, "(?, ?, ?, ?, ?, ?, ?)")
				args = append(args, ids.New(ids.Job), string(JobKeygen), w.ID, string(JobQueued), now, now, now)
				if len(values) == 500 || i == queued-1 {
					if _, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO jobs (id, kind, wallet_id, state, available_at, created_at, updated_at) VALUES `+
						strings.Join(values, ", ")), args...); err != nil {
						t.Fatal(err)
					}
					values, args = nil, nil
				}
			}
			var plan []string
			err = s.db.InTx(ctx, func(tx *sqlx.Tx) error {
				explain := "EXPLAIN QUERY PLAN "
				if dialect == db.Postgres {
					if _, err := tx.ExecContext(ctx, claimPlanning); err != nil {
						return err
					}
					explain = "EXPLAIN "
				}
				rows, err := tx.QueryxContext(ctx, tx.Rebind(explain+s.claimQuery()), now+1, now+1, 32)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					cols, err := rows.SliceScan()
					if err != nil {
						return err
					}
					plan = append(plan, fmt.Sprint(cols...))
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if !strings.Contains(text, "jobs_open") || strings.Contains(text, "Sort") || strings.Contains(text, "Bitmap") || strings.Contains(text, "TEMP B-TREE") {
				t.Fatalf("the claim does not walk jobs_open in order:\n%s", text)
			}
			// And the claim itself takes the oldest: the wallet's own keygen
			// job, queued before the others.
			got, err := s.ClaimJobs(ctx, Claim{Driver: "driver-a", LeaseIDs: []string{ids.New(ids.Lease), ids.New(ids.Lease)}, Now: time.UnixMicro(now + 1), LeaseFor: time.Minute})
			if err != nil || len(got) != 2 || got[0].ID != first.ID || got[0].Seq >= got[1].Seq {
				t.Fatalf("claim = %+v, %v; want job %s first", got, err, first.ID)
			}
		})
	}
}
