package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/server/store"
)

var backupTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"BackupReportsReplaceAndList", testBackupReports},
	{"BackupReportNeedsWallet", testBackupReportNeedsWallet},
	{"BackupReportOfAPooledKey", testBackupReportOfAPooledKey},
}

func testBackupReports(t *testing.T, s store.Store) {
	ctx := context.Background()
	w1 := mustCreateWallet(t, s, "")
	w2 := mustCreateWallet(t, s, "")
	at := time.UnixMicro(time.Now().UnixMicro()).UTC()
	put := func(r store.BackupReport) {
		t.Helper()
		r.UpdatedAt = at
		if err := s.PutBackupReport(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	put(store.BackupReport{WalletID: w1.ID, Signer: "signer-2", State: store.BackupFailing, Reason: "connection refused"})
	put(store.BackupReport{WalletID: w1.ID, Signer: "signer-1", State: store.BackupPending})
	put(store.BackupReport{WalletID: w1.ID, Signer: "signer-2", State: store.BackupComplete, Location: "s3://b/p/x"})
	put(store.BackupReport{WalletID: w2.ID, Signer: "signer-3", State: store.BackupPending})

	got, err := s.BackupReports(ctx, []string{w1.ID, w2.ID, "wal_none"})
	if err != nil {
		t.Fatal(err)
	}
	r1 := got[w1.ID]
	if len(r1) != 2 || r1[0].Signer != "signer-1" || r1[1].Signer != "signer-2" {
		t.Fatalf("wallet 1 reports: %+v", r1)
	}
	if r := r1[1]; r.State != store.BackupComplete || r.Reason != "" || r.Location != "s3://b/p/x" || !r.UpdatedAt.Equal(at) {
		t.Fatalf("the later report did not replace the earlier one: %+v", r)
	}
	if len(got[w2.ID]) != 1 || len(got["wal_none"]) != 0 {
		t.Fatalf("reports: %+v", got)
	}
	if empty, err := s.BackupReports(ctx, nil); err != nil || len(empty) != 0 {
		t.Fatalf("no ids: %v %v", empty, err)
	}
}

func testBackupReportNeedsWallet(t *testing.T, s store.Store) {
	err := s.PutBackupReport(context.Background(), &store.BackupReport{WalletID: "wal_00000000000000000000000000", Signer: "signer-1", State: store.BackupPending})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("report for an unknown wallet: %v", err)
	}
}

// A pooled key's shares are backed up before the key is assigned: the
// reports are taken while the wallet is hidden, and the wallet that gets
// the key shows them.
func testBackupReportOfAPooledKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	id := addPooledKey(t, s, []string{"signer-1", "signer-2", "signer-3"})
	if w, err := s.BackupWallet(ctx, id); err != nil || w.ID != id {
		t.Fatalf("BackupWallet of a pooled key = %v, %v", w, err)
	}
	if err := s.PutBackupReport(ctx, &store.BackupReport{WalletID: id, Signer: "signer-1", State: store.BackupComplete, Location: "dir/x"}); err != nil {
		t.Fatalf("a report on a pooled key: %v", err)
	}
	w, _, err := s.AssignPooledWallet(ctx, poolRequest("assigned", ""))
	if err != nil || w.ID != id {
		t.Fatalf("AssignPooledWallet = %v, %v; want the pooled key %s", w, err, id)
	}
	got, err := s.BackupReports(ctx, []string{id})
	if err != nil || len(got[id]) != 1 || got[id][0].State != store.BackupComplete {
		t.Fatalf("reports of the assigned wallet = %v, %v", got[id], err)
	}
}
