package api

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

// attachBackups fills the backup field of wallets (out[i] is rows[i]) from
// their signers' reports.
func (s *WalletServer) attachBackups(ctx context.Context, rows []*store.Wallet, out []*walletv1.Wallet) error {
	ids := make([]string, 0, len(rows))
	for _, w := range rows {
		if w.Backend == store.BackendMPC && w.Status == store.WalletActive {
			ids = append(ids, w.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	reports, err := s.store.BackupReports(ctx, ids)
	if err != nil {
		return err
	}
	for i, w := range rows {
		out[i].Backup = backupToProto(w, reports[w.ID])
	}
	return nil
}

// backupToProto sums the reports of a wallet's signers: failing if any
// share's backup fails, complete when every share is backed up, pending
// otherwise; nil when no signer reported (backups are not configured).
func backupToProto(w *store.Wallet, reports []*store.BackupReport) *walletv1.Backup {
	if len(reports) == 0 {
		return nil
	}
	bySigner := map[string]*store.BackupReport{}
	for _, r := range reports {
		bySigner[r.Signer] = r
	}
	out := &walletv1.Backup{}
	var failing, waiting []string
	for _, name := range w.Signers {
		r := bySigner[name]
		if r == nil {
			waiting = append(waiting, name)
			continue
		}
		out.Shares = append(out.Shares, &walletv1.ShareBackup{Signer: name, State: backupStateToProto(r.State),
			Reason: r.Reason, Location: r.Location, UpdateTime: timestamppb.New(r.UpdatedAt)})
		switch r.State {
		case store.BackupFailing:
			failing = append(failing, fmt.Sprintf("%s: %s", name, r.Reason))
		case store.BackupComplete:
		default:
			waiting = append(waiting, name)
		}
	}
	switch {
	case len(failing) > 0:
		out.State, out.Reason = walletv1.BackupState_BACKUP_STATE_FAILING, "failing at "+strings.Join(failing, "; ")
	case len(waiting) > 0:
		out.State, out.Reason = walletv1.BackupState_BACKUP_STATE_PENDING, "not backed up yet: "+strings.Join(waiting, ", ")
	default:
		out.State = walletv1.BackupState_BACKUP_STATE_COMPLETE
	}
	return out
}

func backupStateToProto(s store.BackupState) walletv1.BackupState {
	switch s {
	case store.BackupPending:
		return walletv1.BackupState_BACKUP_STATE_PENDING
	case store.BackupComplete:
		return walletv1.BackupState_BACKUP_STATE_COMPLETE
	case store.BackupFailing:
		return walletv1.BackupState_BACKUP_STATE_FAILING
	default:
		return walletv1.BackupState_BACKUP_STATE_UNSPECIFIED
	}
}
