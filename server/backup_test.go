package server_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

// TestBackupReports: signers report their shares' backups over the node
// port (mTLS, each only for wallets of its group) and the wallet API sums
// them, in every wire protocol.
func TestBackupReports(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Signers: []string{"signer-1", "signer-2", "signer-3"}, Configure: func(c *server.Config) {
		c.MPCSigners = []string{"signer-1", "signer-2", "signer-3"}
		c.MPCThreshold = 2
		c.HSM = true
	}})
	ctx := context.Background()
	st := env.Server.Store()
	w, work := storetest.NewWallet("", 1)
	if _, _, err := st.CreateWallet(ctx, w, work); err != nil {
		t.Fatal(err)
	}
	if err := st.ActivateWallet(ctx, w.ID, storetest.PubKey); err != nil {
		t.Fatal(err)
	}
	hsmWallet := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{2}, Backend: store.BackendHSM, KeyScheme: store.KeySchemeSecp256k1, Status: store.WalletCreating}
	if _, _, err := st.CreateWallet(ctx, hsmWallet, store.Work{Job: &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: hsmWallet.ID, State: store.JobQueued}}); err != nil {
		t.Fatal(err)
	}
	token := env.Token(t, auth.ScopeAdmin)
	report := func(t *testing.T, signer string, opts []connect.ClientOption, r *ceremonyv1.ReportBackupRequest) error {
		t.Helper()
		c := ceremonyv1connect.NewCeremonyServiceClient(env.NodeClient(t, signer), env.NodeURL, opts...)
		_, err := c.ReportBackup(ctx, connect.NewRequest(r))
		return err
	}
	get := func(t *testing.T, opts []connect.ClientOption) *walletv1.Backup {
		t.Helper()
		res, err := walletClient(env, token, opts...).GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: w.ID}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetWallet().GetBackup()
	}
	const (
		pending  = walletv1.BackupState_BACKUP_STATE_PENDING
		complete = walletv1.BackupState_BACKUP_STATE_COMPLETE
		failing  = walletv1.BackupState_BACKUP_STATE_FAILING
	)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			for _, s := range []string{"signer-1", "signer-2", "signer-3"} {
				if err := report(t, s, p.opts, &ceremonyv1.ReportBackupRequest{WalletId: w.ID, State: pending}); err != nil {
					t.Fatal(err)
				}
			}
			if b := get(t, p.opts); b.GetState() != pending || !strings.Contains(b.GetReason(), "signer-1, signer-2, signer-3") {
				t.Fatalf("all pending: %v", b)
			}
			if err := report(t, "signer-2", p.opts, &ceremonyv1.ReportBackupRequest{WalletId: w.ID, State: failing, Reason: "connection refused"}); err != nil {
				t.Fatal(err)
			}
			if b := get(t, p.opts); b.GetState() != failing || b.GetReason() != "failing at signer-2: connection refused" || len(b.GetShares()) != 3 {
				t.Fatalf("one failing: %v", b)
			}
			for _, s := range []string{"signer-1", "signer-2", "signer-3"} {
				if err := report(t, s, p.opts, &ceremonyv1.ReportBackupRequest{WalletId: w.ID, State: complete, Location: "s3://b/" + w.ID + "/" + s + ".age"}); err != nil {
					t.Fatal(err)
				}
			}
			b := get(t, p.opts)
			if b.GetState() != complete || b.GetReason() != "" || b.GetShares()[1].GetLocation() != "s3://b/"+w.ID+"/signer-2.age" {
				t.Fatalf("all complete: %v", b)
			}
			list, err := walletClient(env, token, p.opts...).ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, lw := range list.Msg.GetWallets() {
				if (lw.GetId() == w.ID) != (lw.GetBackup().GetState() == complete) {
					t.Fatalf("ListWallets backup of %s: %v", lw.GetId(), lw.GetBackup())
				}
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			signer string
			req    *ceremonyv1.ReportBackupRequest
			code   connect.Code
			msg    string
		}{
			{"signer outside the group", "signer-x", &ceremonyv1.ReportBackupRequest{WalletId: w.ID, State: complete}, connect.CodePermissionDenied, "holds no share"},
			{"hsm wallet", "signer-1", &ceremonyv1.ReportBackupRequest{WalletId: hsmWallet.ID, State: complete}, connect.CodePermissionDenied, "holds no share"},
			{"driver", "driver-x", &ceremonyv1.ReportBackupRequest{WalletId: w.ID, State: complete}, connect.CodePermissionDenied, "it is for signers"},
			{"unknown wallet", "signer-1", &ceremonyv1.ReportBackupRequest{WalletId: ids.New(ids.Wallet), State: complete}, connect.CodeNotFound, "not found"},
			{"no state", "signer-1", &ceremonyv1.ReportBackupRequest{WalletId: w.ID}, connect.CodeInvalidArgument, "state"},
			{"bad wallet id", "signer-1", &ceremonyv1.ReportBackupRequest{WalletId: "x", State: complete}, connect.CodeInvalidArgument, "wallet_id"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, report(t, tc.signer, nil, tc.req), tc.code, tc.msg)
			})
		}
	})
}
