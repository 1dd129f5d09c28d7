package ceremony

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/server/store"
)

// ReportBackup records a signer's backup state for its share of a wallet.
// A signer reports only for wallets whose group it belongs to.
func (s *ceremonyService) ReportBackup(ctx context.Context, req *connect.Request[ceremonyv1.ReportBackupRequest]) (*connect.Response[ceremonyv1.ReportBackupResponse], error) {
	o := s.o
	who, err := o.caller(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	w, err := o.store.BackupWallet(ctx, m.GetWalletId())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("wallet %s not found", m.GetWalletId()))
	case err != nil:
		o.logger.ErrorContext(ctx, "load wallet", "wallet", m.GetWalletId(), "error", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
	case w.Backend != store.BackendMPC || !slices.Contains(w.Signers, who.Name):
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s holds no share of wallet %s", who.Name, w.ID))
	}
	state, ok := backupStateFromProto(m.GetState())
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("state: %v is not a backup state", m.GetState()))
	}
	r := &store.BackupReport{WalletID: w.ID, Signer: who.Name, State: state, Reason: m.GetReason(), Location: m.GetLocation()}
	if err := o.store.PutBackupReport(ctx, r); err != nil {
		o.logger.ErrorContext(ctx, "store backup report", "wallet", w.ID, "error", err)
		return nil, connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	if state == store.BackupFailing {
		o.logger.WarnContext(ctx, "share backup failing", "wallet", w.ID, "signer", who.Name, "reason", m.GetReason())
	}
	return connect.NewResponse(&ceremonyv1.ReportBackupResponse{}), nil
}

func backupStateFromProto(s walletv1.BackupState) (store.BackupState, bool) {
	switch s {
	case walletv1.BackupState_BACKUP_STATE_PENDING:
		return store.BackupPending, true
	case walletv1.BackupState_BACKUP_STATE_COMPLETE:
		return store.BackupComplete, true
	case walletv1.BackupState_BACKUP_STATE_FAILING:
		return store.BackupFailing, true
	default:
		return "", false
	}
}
