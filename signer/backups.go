package signer

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// queueBackup queues the backup of new key material at this signer (called
// by onKeyActive: a key generation now, a key refresh too). It only writes a row, so it never holds up signing; a row lost to
// a crash right here is made again by reconcileBackups at the next start.
//
// Backups and `sigil recover` hold CMP (ECDSA) shares only: a share of
// another scheme is not queued, so it never sits in a failing state, and
// the signer says so once per activation and start.
func (s *Signer) queueBackup(ctx context.Context, sh *share) {
	if s.backups == nil {
		return
	}
	if sh.Scheme != schemeSecp256k1 {
		s.logger.WarnContext(ctx, "share not backed up: backups cover ECDSA (CMP) shares only; keep this signer's database and KEK backed up",
			"wallet", sh.WalletID, "scheme", sh.Scheme)
		return
	}
	if err := s.backups.Enqueue(ctx, sh.WalletID, sh.KeygenCeremonyID); err != nil {
		s.logger.ErrorContext(ctx, "queue share backup", "wallet", sh.WalletID, "error", err)
	}
}

// openBackups starts share backups when configured.
func (s *Signer) openBackups(ctx context.Context) error {
	if !s.cfg.Backup.Enabled() {
		return nil
	}
	u, err := backup.New(ctx, s.cfg.Backup, s.db, s.name, backupSource{s}, backupReporter{s}, s.logger, s.cfg.Registerer)
	if err != nil {
		return err
	}
	s.backups = u
	return nil
}

// runBackups queues every active share not backed up under the current
// configuration (shares from before backups were turned on, a change of
// recipients or target, a crash between activation and queueing), then
// uploads until ctx ends.
func (s *Signer) runBackups(ctx context.Context) {
	active, err := s.shares.active(ctx)
	if err != nil {
		s.logger.ErrorContext(ctx, "list active shares for backup", "error", err)
	}
	for _, sh := range active {
		s.queueBackup(ctx, sh)
	}
	s.backups.Run(ctx)
}

type backupSource struct{ s *Signer }

// BackupShare decrypts the active share of a wallet for its backup.
func (b backupSource) BackupShare(ctx context.Context, walletID string) (string, []byte, error) {
	sh, err := b.s.shares.get(ctx, walletID)
	if err != nil {
		return "", nil, err
	}
	if sh.State != shareActive {
		return "", nil, fmt.Errorf("the share of wallet %s is not active", walletID)
	}
	plain, err := b.s.kek.Open(sealBinding(walletID, sh.KeyEpoch), b.s.name, sh.Sealed)
	if err != nil {
		return "", nil, fmt.Errorf("decrypt share of wallet %s: %w", walletID, err)
	}
	return sh.KeygenCeremonyID, plain, nil
}

type backupReporter struct{ s *Signer }

// ReportBackup tells the coordinator.
func (b backupReporter) ReportBackup(ctx context.Context, r backup.Report) error {
	state := walletv1.BackupState_BACKUP_STATE_PENDING
	switch r.State {
	case backup.StateComplete:
		state = walletv1.BackupState_BACKUP_STATE_COMPLETE
	case backup.StateFailing:
		state = walletv1.BackupState_BACKUP_STATE_FAILING
	}
	_, err := b.s.ceremony.ReportBackup(ctx, connect.NewRequest(&ceremonyv1.ReportBackupRequest{
		WalletId: r.WalletID, State: state, Reason: truncate(r.Reason, 1024), Location: truncate(r.Location, 1024)}))
	switch connect.CodeOf(err) {
	case connect.CodeNotFound, connect.CodePermissionDenied, connect.CodeInvalidArgument, connect.CodeFailedPrecondition:
		return fmt.Errorf("%w: %w", backup.ErrReportRefused, err)
	}
	return err
}
