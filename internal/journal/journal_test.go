package journal_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/journal"
)

func TestJournal(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		ctx := context.Background()
		d := open(t)
		j, err := journal.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("empty verifies", func(t *testing.T) {
			if n, b, err := j.Verify(ctx); err != nil || b != nil || n != 0 {
				t.Fatalf("%d %v %v", n, b, err)
			}
		})
		t.Run("concurrent appends chain", func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				wg.Go(func() {
					_, err := j.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, Reason: fmt.Sprint("no ", i),
						WalletID: "wal_a", SignatureID: fmt.Sprint("sig_", i), Digest: "00"})
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if n, b, err := j.Verify(ctx); err != nil || b != nil || n != 40 {
				t.Fatalf("%d %v %v", n, b, err)
			}
		})
		t.Run("replay", func(t *testing.T) {
			e := journal.Entry{Node: "signer-1", Decision: journal.Signed, WalletID: "wal_b", SignatureID: "sig_1", RequestID: "r1"}
			if _, err := j.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			// The same request again under the same signature request is a
			// retry with another quorum: allowed.
			if _, err := j.Append(ctx, e); err != nil {
				t.Fatalf("retry refused: %v", err)
			}
			// Another wallet may use the same request id.
			other := e
			other.WalletID = "wal_c"
			if _, err := j.Append(ctx, other); err != nil {
				t.Fatal(err)
			}
			replay := e
			replay.SignatureID = "sig_2"
			if _, err := j.Append(ctx, replay); !errors.Is(err, journal.ErrReplay) {
				t.Fatalf("replay: %v", err)
			}
		})
		t.Run("replays within one group commit", func(t *testing.T) {
			// Appends that arrive together are written in one transaction:
			// the replay check must see the records ahead of it in the
			// same batch, not only those already committed.
			const n = 16
			// Hold the first batch (another wallet's record) until the
			// others have all queued behind it, so that they form one batch.
			held, release := holdFirstBatch(t, j)
			var wg sync.WaitGroup
			wg.Go(func() {
				if _, err := j.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.Signed, WalletID: "wal_e", SignatureID: "sig_0"}); err != nil {
					t.Error(err)
				}
			})
			<-held
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					_, err := j.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.Signed, WalletID: "wal_d",
						SignatureID: fmt.Sprint("sig_", i), RequestID: "same-request"})
					errs <- err
				})
			}
			for j.Queued() < n {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			close(errs)
			var signed, replays int
			for err := range errs {
				switch {
				case err == nil:
					signed++
				case errors.Is(err, journal.ErrReplay):
					replays++
				default:
					t.Fatal(err)
				}
			}
			if signed != 1 || replays != n-1 {
				t.Fatalf("%d signed and %d refused as replays, want 1 and %d", signed, replays, n-1)
			}
			if _, b, err := j.Verify(ctx); err != nil || b != nil {
				t.Fatalf("chain after refused replays: %v %v", b, err)
			}
		})
		t.Run("a waiting append gives up with its context", func(t *testing.T) {
			held, release := holdFirstBatch(t, j)
			done := make(chan error, 1)
			go func() {
				_, err := j.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, WalletID: "wal_f", SignatureID: "sig_holder"})
				done <- err
			}()
			<-held
			wctx, cancel := context.WithCancel(ctx)
			gaveUp := make(chan error, 1)
			go func() {
				_, err := j.Append(wctx, journal.Entry{Node: "signer-1", Decision: journal.Signed, WalletID: "wal_f", SignatureID: "sig_withdrawn"})
				gaveUp <- err
			}()
			for j.Queued() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
			if err := <-gaveUp; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled append: %v", err)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			entries, err := j.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.SignatureID == "sig_withdrawn" {
					t.Fatalf("the withdrawn append was written: %+v", e)
				}
			}
		})
		t.Run("a record the database refuses fails alone", func(t *testing.T) {
			if d.Dialect != db.Postgres {
				t.Skip("PostgreSQL refuses NUL in text; SQLite stores it")
			}
			held, release := holdFirstBatch(t, j)
			var wg sync.WaitGroup
			wg.Go(func() {
				_, _ = j.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, WalletID: "wal_g", SignatureID: "sig_first"})
			})
			<-held
			errs := make([]error, 3)
			for i, reason := range []string{"fine", "bad \x00 byte", "fine too"} {
				wg.Go(func() {
					_, errs[i] = j.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, Reason: reason, WalletID: "wal_g",
						SignatureID: fmt.Sprint("sig_g", i)})
				})
			}
			for j.Queued() < 3 {
				time.Sleep(time.Millisecond)
			}
			close(release)
			wg.Wait()
			if errs[0] != nil || errs[1] == nil || errs[2] != nil {
				t.Fatalf("outcomes = %v, want only the record with a NUL byte refused", errs)
			}
			if _, b, err := j.Verify(ctx); err != nil || b != nil {
				t.Fatalf("chain: %v %v", b, err)
			}
		})
		t.Run("two journals on one database", func(t *testing.T) {
			// Two nodes sharing a database append to one chain. On
			// PostgreSQL each first tries one INSERT after the tail it knows;
			// when the other appended since, the primary key refuses it and
			// the batch is written after the real last record instead.
			other, err := journal.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			before, _, err := j.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, racedBefore := j.OneStatementWrites()
			append := func(jj *journal.Journal, i int) error {
				_, err := jj.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, Reason: fmt.Sprint("turn ", i),
					WalletID: "wal_h", SignatureID: fmt.Sprint("sig_h", i), Digest: "00"})
				return err
			}
			const turns = 10
			for i := range turns { // strictly in turn: every append but the first of each finds its tail stale
				if err := append(j, 2*i); err != nil {
					t.Fatal(err)
				}
				if err := append(other, 2*i+1); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2*turns)
			for i := range 2 * turns { // and at once
				wg.Go(func() { errs <- append([]*journal.Journal{j, other}[i%2], 2*turns+i) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			n, b, err := j.Verify(ctx)
			if err != nil || b != nil || n != before+4*turns {
				t.Fatalf("chain after two writers: %d records (want %d), %v %v", n, before+4*turns, b, err)
			}
			if _, raced := j.OneStatementWrites(); d.Dialect == db.Postgres && raced-racedBefore < turns-1 {
				t.Fatalf("%d one-statement writes lost to the other writer, want at least %d: the stale tail went unnoticed", raced-racedBefore, turns-1)
			}
		})
		t.Run("one writer keeps to one statement", func(t *testing.T) {
			if d.Dialect != db.Postgres {
				t.Skip("SQLite writes every batch in its own transaction")
			}
			fresh, err := journal.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				if _, err := fresh.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, WalletID: "wal_i",
					SignatureID: fmt.Sprint("sig_i", i), Digest: "00"}); err != nil {
					t.Fatal(err)
				}
			}
			// The first append reads the tail under the lock; the others
			// chain onto what it wrote.
			if written, raced := fresh.OneStatementWrites(); written != 4 || raced != 0 {
				t.Fatalf("one-statement writes = %d, lost = %d; want 4 and 0", written, raced)
			}
		})
		t.Run("a tail the database lost is not chained onto", func(t *testing.T) {
			// A database restored from a backup, or failed over to a copy
			// that had not seen the last records, no longer holds the tail
			// this journal wrote: the next batch must chain onto what is
			// there, not onto what was.
			fresh, err := journal.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			app := func(i int) {
				t.Helper()
				if _, err := fresh.Append(ctx, journal.Entry{Node: "signer-1", Decision: journal.RefusedGate, WalletID: "wal_j",
					SignatureID: fmt.Sprint("sig_j", i), Digest: "00"}); err != nil {
					t.Fatal(err)
				}
			}
			app(0)
			app(1)
			if _, err := d.ExecContext(ctx, `DELETE FROM journal WHERE seq = (SELECT MAX(seq) FROM journal)`); err != nil {
				t.Fatal(err)
			}
			_, lostBefore := fresh.OneStatementWrites()
			app(2)
			if _, b, err := fresh.Verify(ctx); err != nil || b != nil {
				t.Fatalf("chain after the tail was lost: %v %v", b, err)
			}
			if _, lost := fresh.OneStatementWrites(); d.Dialect == db.Postgres && lost != lostBefore+1 {
				t.Fatalf("the one-statement write did not notice the lost tail (%d lost before, %d after)", lostBefore, lost)
			}
		})
		t.Run("an altered record is named", func(t *testing.T) {
			entries, err := j.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			target := entries[7].Seq
			if _, err := d.ExecContext(ctx, d.Rebind(`UPDATE journal SET reason = ? WHERE seq = ?`), "approved after all", target); err != nil {
				t.Fatal(err)
			}
			_, b, err := j.Verify(ctx)
			if err != nil || b == nil || b.Seq != target {
				t.Fatalf("verify after altering record %d: %v %v", target, b, err)
			}
		})
	})
}

// holdFirstBatch makes j's next batch wait before it is written: held
// closes when it starts waiting, and closing release lets it go on.
func holdFirstBatch(t *testing.T, j *journal.Journal) (held, release chan struct{}) {
	held, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	j.SetBeforeWrite(func() { once.Do(func() { close(held); <-release }) })
	t.Cleanup(func() { j.SetBeforeWrite(nil) })
	return held, release
}
