package proctest_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/proctest"
	"github.com/sigil-wallet/sigil/server/servertest"
)

// requireSoftHSM skips without SoftHSM2, except under CI, where its absence
// is a broken machine.
func requireSoftHSM(t *testing.T) {
	t.Helper()
	if cluster.SoftHSMAvailable() {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("SoftHSM2 is not installed (CI=true, so this is a failure, not a skip)")
	}
	t.Skip("SoftHSM2 is not installed")
}

// walletClient calls a replica's API port with a bearer token.
func walletClient(apiURL, token string) walletv1connect.WalletServiceClient {
	return walletv1connect.NewWalletServiceClient(servertest.H2CClient(), apiURL,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
}

// hsmWallet creates an HSM wallet and waits until a driver made its key.
func hsmWallet(t *testing.T, api walletv1connect.WalletServiceClient) (string, []byte) {
	t.Helper()
	ctx := t.Context()
	w, err := api.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "hsm", Backend: walletv1.Backend_BACKEND_HSM}))
	if err != nil {
		t.Fatal(err)
	}
	walletID := w.Msg.GetWallet().GetId()
	var pub []byte
	proctest.Eventually(t, 30*time.Second, "the HSM wallet to become active", func() (bool, error) {
		got, err := api.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: walletID}))
		if err != nil {
			return false, err
		}
		pub = got.Msg.GetWallet().GetPublicKey()
		return got.Msg.GetWallet().GetStatus() == walletv1.WalletStatus_WALLET_STATUS_ACTIVE, nil
	})
	return walletID, pub
}

// leasedTo lists the jobs leased to driver now.
func leasedTo(t *testing.T, coord *db.DB, driver string) []string {
	t.Helper()
	var ids []string
	if err := coord.SelectContext(t.Context(), &ids, coord.Rebind(`SELECT id FROM jobs WHERE state = 'leased' AND leased_by = ?`), driver); err != nil {
		t.Fatal(err)
	}
	return ids
}

// freezeHolding stops d (SIGSTOP) at a moment the database shows it holding
// leases, preferably several, and returns them; d stays stopped. done says
// the work ran out, which fails the test.
func freezeHolding(t *testing.T, d *proctest.Driver, coord *db.DB, done func() bool) []string {
	t.Helper()
	var held []string
	for range 200 {
		d.Stop()
		if held = leasedTo(t, coord, d.Name); len(held) > 1 {
			return held
		}
		d.Continue()
		if done() {
			break
		}
	}
	if len(held) == 0 {
		t.Fatalf("%s never held a lease when looked at: nothing was in flight", d.Name)
	}
	d.Stop()
	return leasedTo(t, coord, d.Name)
}

// freezeStuck freezes d at a moment it holds leases and keeps it frozen
// until each of them is decided: done on its first attempt (its result was
// on the wire as it froze), or stuck (the lease lapsed while d was frozen,
// or another driver already took the job over). It returns the stuck jobs,
// which only another driver can finish; when there are none it resumes d
// and tries again. d stays frozen.
func freezeStuck(t *testing.T, d *proctest.Driver, coord *db.DB, done func() bool) (held, stuck []string) {
	t.Helper()
	for range 10 {
		held = freezeHolding(t, d, coord, done)
		proctest.Eventually(t, 30*time.Second, "the leases "+d.Name+" froze holding to be done or lapse", func() (bool, error) {
			stuck = stuck[:0]
			for _, id := range held {
				var j struct {
					By       string `db:"leased_by"`
					State    string `db:"state"`
					Attempts int    `db:"attempts"`
					Expires  int64  `db:"lease_expires_at"`
				}
				if err := coord.GetContext(t.Context(), &j, coord.Rebind(`SELECT leased_by, state, attempts, lease_expires_at FROM jobs WHERE id = ?`), id); err != nil {
					return false, err
				}
				switch {
				case j.By != d.Name:
					stuck = append(stuck, id) // taken over already
				case j.State == "done" && j.Attempts == 1:
					// its result landed as it froze
				case j.State == "leased" && j.Expires <= time.Now().UnixMicro():
					stuck = append(stuck, id)
				default:
					return false, nil
				}
			}
			return true, nil
		})
		if len(stuck) > 0 {
			return held, stuck
		}
		d.Continue()
	}
	t.Fatalf("%s never froze with work that could not reach a replica", d.Name)
	return nil, nil
}

// verifyAllSigned checks the database: exactly total requests on the
// wallet, every one signed with a signature that verifies against pub, one
// sign job each, done once, and no job left open or failed.
func verifyAllSigned(t *testing.T, coord *db.DB, walletID string, pub []byte, total int) {
	t.Helper()
	ctx := t.Context()
	if n := count(t, coord, `SELECT COUNT(*) FROM signatures WHERE wallet_id = ?`, walletID); n != total {
		t.Fatalf("%d signature requests recorded, want %d", n, total)
	}
	if n := count(t, coord, `SELECT COUNT(*) FROM jobs WHERE kind = 'sign' AND state = 'done'`); n != total {
		t.Fatalf("%d sign jobs done, want %d", n, total)
	}
	if n := count(t, coord, `SELECT COUNT(*) FROM jobs WHERE state <> 'done'`); n != 0 {
		t.Fatalf("%d jobs not done", n)
	}
	var rows []struct {
		Digest []byte `db:"digest"`
		R      []byte `db:"sig_r"`
		S      []byte `db:"sig_s"`
		V      int    `db:"recovery_id"`
	}
	if err := coord.SelectContext(ctx, &rows, coord.Rebind(`SELECT digest, sig_r, sig_s, recovery_id FROM signatures WHERE wallet_id = ?`), walletID); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var sig ecsig.Signature
		copy(sig.R[:], r.R)
		copy(sig.S[:], r.S)
		sig.V = byte(r.V)
		if len(r.R) != 32 || len(r.S) != 32 || !ecsig.Verify(pub, r.Digest, sig) {
			t.Fatalf("a recorded signature does not verify: digest %x", r.Digest)
		}
	}
}

// submit asks for total signatures of distinct hashes, 8 at a time,
// spread over the replicas' APIs; once avoidFirst is set, only the others
// are used. A call that fails (its replica died) is sent again to the next
// replica with the same external id, which makes it idempotent: a request
// that did land is not made twice. The channel yields the first error.
func submit(ctx context.Context, apis []walletv1connect.WalletServiceClient, walletID string, total int, avoidFirst *atomic.Bool) <-chan error {
	submitted := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		var firstErr atomic.Value
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					hash := sha256.Sum256(fmt.Appendf(nil, "request %d", i))
					req := &walletv1.CreateSignatureRequest{WalletId: walletID, ExternalId: fmt.Sprintf("req-%d", i),
						Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hash[:]}}
					var err error
					for try := range 4 {
						k := (i + try) % len(apis)
						if k == 0 && len(apis) > 1 && avoidFirst.Load() {
							k = 1
						}
						if _, err = apis[k].CreateSignature(ctx, connect.NewRequest(req)); err == nil {
							break
						}
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
			})
		}
		for i := range total {
			next <- i
		}
		close(next)
		wg.Wait()
		err, _ := firstErr.Load().(error)
		submitted <- err
	}()
	return submitted
}

func count(t *testing.T, d *db.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := d.GetContext(t.Context(), &n, d.Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestHSMQueueSurvivesKills: two coordinator replicas on one PostgreSQL
// database and three HSM drivers (each on its own SoftHSM token holding the
// same master key, each knowing both replicas) sign 1,000 requests sent
// to both replicas. Midway one replica is killed while signatures are
// pending and drivers poll it, and one driver is killed while it holds
// leased jobs. Every request ends signed exactly once with a signature that
// verifies, the dead driver's jobs are finished by others, and a driver
// whose preferred replica died goes on working through the other.
func TestHSMQueueSurvivesKills(t *testing.T) {
	const total = 1000
	drivers := []string{"driver-1", "driver-2", "driver-3"}
	h := proctest.New(t, nil, drivers) // first: it skips under -short
	requireSoftHSM(t)
	dbURL, driverDB := dbtest.PostgresURL(t), dbtest.PostgresURL(t)
	ctx := t.Context()
	tokens, err := cluster.SoftHSMTokens(ctx, filepath.Join(h.Dir, "softhsm"), 2, "tok-1", "tok-2", "tok-3")
	if err != nil {
		t.Fatal(err)
	}
	attestKeys := filepath.Join(h.Dir, "hsm-attestation-keys.pem")
	if err := cluster.EnsureAttestationKeys(ctx, attestKeys, tokens...); err != nil {
		t.Fatal(err)
	}
	opts := proctest.ServerOptions{DatabaseURL: dbURL, HSM: true, AttestationKeys: attestKeys, Args: []string{"--hsm-lease", "3s"}}
	r1 := h.StartServer("replica-1", opts)
	r2 := h.StartServer("replica-2", opts)
	prefs := [][]string{{r1.NodeURL, r2.NodeURL}, {r2.NodeURL, r1.NodeURL}, {r1.NodeURL, r2.NodeURL}}
	var ds []*proctest.Driver
	for i, name := range drivers {
		ds = append(ds, h.StartDriver(name, tokens[i], prefs[i], driverDB))
	}
	token := h.Token(r1, "admin")
	apis := []walletv1connect.WalletServiceClient{walletClient(r1.APIURL, token), walletClient(r2.APIURL, token)}

	walletID, pub := hsmWallet(t, apis[0])

	coord, err := db.Open(ctx, db.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()

	var r1Dead atomic.Bool
	submitted := submit(ctx, apis, walletID, total, &r1Dead)

	signed := func() int {
		return count(t, coord, `SELECT COUNT(*) FROM signatures WHERE wallet_id = ? AND status = 'signed'`, walletID)
	}
	proctest.Eventually(t, 2*time.Minute, "a third of the signatures", func() (bool, error) { return signed() >= total/3, nil })

	// Freeze driver-1 while it holds leases, then kill replica-1 while
	// signatures are pending and it has served claims, then kill driver-1
	// once it holds leases that only another driver can finish.
	freezeHolding(t, ds[0], coord, func() bool { return signed() == total })
	claimedAtR1 := proctest.Value(ctx, r1.MetricsURL, "sigil_hsm_jobs_claimed_total")
	pending := count(t, coord, `SELECT COUNT(*) FROM signatures WHERE wallet_id = ? AND status = 'pending'`, walletID)
	r1.Kill()
	r1Dead.Store(true)
	killedAt := time.Now()
	if claimedAtR1 <= 0 || pending == 0 {
		t.Fatalf("replica-1 killed with %v claims served and %d signatures pending: no work was in flight", claimedAtR1, pending)
	}
	held, inFlight := freezeStuck(t, ds[0], coord, func() bool { return signed() == total })
	ds[0].Kill()
	t.Logf("killed replica-1 with %d signatures pending (%v claims served by it), then driver-1 frozen holding %d leases (%d of them stuck)",
		pending, claimedAtR1, len(held), len(inFlight))

	if err := <-submitted; err != nil {
		t.Fatalf("submitting: %v", err)
	}
	proctest.Eventually(t, 2*time.Minute, "every signature", func() (bool, error) { return signed() == total, nil })

	verifyAllSigned(t, coord, walletID, pub, total)
	// The jobs driver-1 died holding were finished by another driver.
	for _, id := range inFlight {
		var j struct {
			LeasedBy string `db:"leased_by"`
			Attempts int    `db:"attempts"`
		}
		if err := coord.GetContext(ctx, &j, coord.Rebind(`SELECT leased_by, attempts FROM jobs WHERE id = ?`), id); err != nil {
			t.Fatal(err)
		}
		if j.LeasedBy == "driver-1" || j.Attempts < 2 {
			t.Fatalf("job %s, in flight at driver-1's death, finished by %s after %d attempts", id, j.LeasedBy, j.Attempts)
		}
	}
	// driver-3 prefers replica-1: after its death it failed over to replica-2.
	after := count(t, coord, `SELECT COUNT(*) FROM jobs WHERE leased_by = 'driver-3' AND updated_at > ?`, killedAt.UnixMicro())
	viaR2 := proctest.Value(ctx, r2.MetricsURL, "sigil_hsm_jobs_completed_total", `driver="driver-3"`)
	if after == 0 || viaR2 <= 0 {
		t.Fatalf("driver-3 finished %d jobs after replica-1 died (%v through replica-2): it did not fail over", after, viaR2)
	}
	if !slices.ContainsFunc(ds[1:], func(d *proctest.Driver) bool { return d.Running() }) {
		t.Fatal("no driver survived")
	}
}
