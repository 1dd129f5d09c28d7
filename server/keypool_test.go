package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

// TestCreateWalletFromKeyPool calls CreateWallet concurrently, over HTTP,
// with fewer pooled keys than calls, on SQLite and PostgreSQL: as many
// wallets as pooled keys come back ACTIVE at once, each with its own key;
// the others wait for a key generation as without a pool.
func TestCreateWalletFromKeyPool(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			env := servertest.Start(t, servertest.Options{Dialect: dialect, Configure: func(c *server.Config) {
				c.MPCSigners = []string{"signer-1", "signer-2", "signer-3"}
				c.MPCThreshold = 2
			}})
			ctx := context.Background()
			const pooled, calls = 3, 10
			for range pooled {
				seedPooledKey(t, env.Server.Store(), env.Config.MPCSigners)
			}
			c := walletClient(env, env.Token(t, auth.ScopeAdmin))
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				active = map[string]string{}
				others int
			)
			for i := range calls {
				wg.Go(func() {
					res, err := c.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: fmt.Sprintf("w%d", i)}))
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("CreateWallet: %v", err)
						return
					}
					w := res.Msg.GetWallet()
					switch w.GetStatus() {
					case walletv1.WalletStatus_WALLET_STATUS_ACTIVE:
						active[string(w.GetPublicKey())+w.GetId()] = w.GetName()
					case walletv1.WalletStatus_WALLET_STATUS_CREATING:
						others++
					}
				})
			}
			wg.Wait()
			if len(active) != pooled || others != calls-pooled {
				t.Fatalf("%d wallets active at once and %d creating; want %d and %d", len(active), others, pooled, calls-pooled)
			}
		})
	}
}

func seedPooledKey(t *testing.T, st *store.SQL, signers []string) {
	t.Helper()
	ctx := context.Background()
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletPooling, Threshold: 2, Signers: signers}
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, WalletID: w.ID, State: store.CeremonyWaiting,
		Threshold: 2, GroupSigners: signers}
	if _, _, err := st.CreateWallet(ctx, w, store.Work{Ceremony: c}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: storetest.PubKey}}); err != nil {
		t.Fatal(err)
	}
}
