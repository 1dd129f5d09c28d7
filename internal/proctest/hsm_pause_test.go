package proctest_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/proctest"
)

// TestHSMDriverPausedPastItsLease: a driver frozen with SIGSTOP while it
// holds leases stays frozen until every one of its jobs is done (another
// driver took over those whose lease lapsed); resumed, it finishes the HSM
// work it had in hand, but the coordinator refuses each of its late
// results, the driver drops them, and no signature is recorded twice.
func TestHSMDriverPausedPastItsLease(t *testing.T) {
	const total = 600
	h := proctest.New(t, nil, []string{"driver-1", "driver-2"}) // first: it skips under -short
	requireSoftHSM(t)
	dbURL, driverDB := dbtest.PostgresURL(t), dbtest.PostgresURL(t)
	ctx := t.Context()
	tokens, err := cluster.SoftHSMTokens(ctx, filepath.Join(h.Dir, "softhsm"), 2, "tok-1", "tok-2")
	if err != nil {
		t.Fatal(err)
	}
	attestKeys := filepath.Join(h.Dir, "hsm-attestation-keys.pem")
	if err := cluster.EnsureAttestationKeys(ctx, attestKeys, tokens...); err != nil {
		t.Fatal(err)
	}
	r := h.StartServer("replica-1", proctest.ServerOptions{DatabaseURL: dbURL, HSM: true, AttestationKeys: attestKeys, Args: []string{"--hsm-lease", "2s"}})
	d1 := h.StartDriver("driver-1", tokens[0], []string{r.NodeURL}, driverDB)
	h.StartDriver("driver-2", tokens[1], []string{r.NodeURL}, driverDB)
	api := walletClient(r.APIURL, h.Token(r, "admin"))
	walletID, pub := hsmWallet(t, api)
	coord, err := db.Open(ctx, db.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()

	var never atomic.Bool
	submitted := submit(ctx, []walletv1connect.WalletServiceClient{api}, walletID, total, &never)
	signed := func() int {
		return count(t, coord, `SELECT COUNT(*) FROM signatures WHERE wallet_id = ? AND status = 'signed'`, walletID)
	}
	proctest.Eventually(t, time.Minute, "the first signatures", func() (bool, error) { return signed() >= total/10, nil })
	held, stuck := freezeStuck(t, d1, coord, func() bool { return signed() == total })
	dropped := func() float64 {
		return proctest.Value(ctx, d1.MetricsURL, "sigil_hsm_driver_jobs_total", `outcome="dropped"`)
	}
	proctest.Eventually(t, time.Minute, "driver-2 to finish the jobs stuck at the frozen driver-1", func() (bool, error) {
		for _, id := range stuck {
			var j struct {
				By       string `db:"leased_by"`
				State    string `db:"state"`
				Attempts int    `db:"attempts"`
			}
			if err := coord.GetContext(ctx, &j, coord.Rebind(`SELECT leased_by, state, attempts FROM jobs WHERE id = ?`), id); err != nil {
				return false, err
			}
			if j.State != "done" {
				return false, nil
			}
			if j.By != "driver-2" || j.Attempts < 2 {
				t.Fatalf("job %s stuck at driver-1 done by %s after %d attempts", id, j.By, j.Attempts)
			}
		}
		return true, nil
	})
	d1.Continue()
	// Generous: after a long freeze the resumed driver first finds its
	// connections dead (the coordinator's, and the journal transaction
	// PostgreSQL ended), and on a loaded machine that has taken over a
	// minute.
	proctest.Eventually(t, 3*time.Minute, "the resumed driver-1 to drop its late results", func() (bool, error) {
		return dropped() >= float64(len(stuck)), nil
	})
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	proctest.Eventually(t, 2*time.Minute, "every signature", func() (bool, error) { return signed() == total, nil })
	verifyAllSigned(t, coord, walletID, pub, total)
	t.Logf("driver-1 froze holding %d leases, %d stuck and taken over by driver-2; resumed, it dropped %v late results", len(held), len(stuck), dropped())
}
