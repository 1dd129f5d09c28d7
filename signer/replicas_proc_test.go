package signer_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"google.golang.org/protobuf/types/known/durationpb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/internal/proctest"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/kek"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

var procSigners = []string{"signer-1", "signer-2", "signer-3"}

// procDeployment is two `sigil server` replicas, started at the same
// moment, running MPC on one PostgreSQL database and three `sigil signer`
// processes spread across them (each lists both replicas, its first choice
// alternating).
type procDeployment struct {
	h        *proctest.Harness
	dbURL    string
	replicas []*proctest.Server
	signers  map[string]*proctest.Signer
	api      []walletv1connect.WalletServiceClient
	store    *store.SQL
}

func startProcDeployment(t *testing.T, replicaArgs ...string) *procDeployment {
	t.Helper()
	h := proctest.New(t, procSigners, nil)
	d := &procDeployment{h: h, dbURL: dbtest.PostgresURL(t), signers: map[string]*proctest.Signer{}}
	// Both replicas start at the same moment on the fresh database: their
	// migrations and start-up race, as replicas deployed together do.
	d.replicas = h.StartServersAtOnce([]string{"replica-1", "replica-2"},
		proctest.ServerOptions{DatabaseURL: d.dbURL, MPCSigners: procSigners, Threshold: 2, Args: replicaArgs},
		func(name string) []string { return []string{"--replica-name", name} })
	for _, r := range d.replicas {
		d.api = append(d.api, procClient(h.Token(r, "admin"), r.APIURL))
	}
	sdb, err := db.Open(t.Context(), db.Config{URL: d.dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close() })
	if d.store, err = store.Open(t.Context(), sdb); err != nil {
		t.Fatal(err)
	}
	return d
}

// urlsFor lists the replicas for the i-th signer, starting at a different
// one for each.
func (d *procDeployment) urlsFor(i int) []string {
	return []string{d.replicas[i%2].NodeURL, d.replicas[(i+1)%2].NodeURL}
}

func (d *procDeployment) startSigners(t *testing.T) {
	t.Helper()
	for i, name := range procSigners {
		ensureKEK(t, d.h.SignerDir(name))
		d.signers[name] = d.h.StartSigner(name, d.urlsFor(i))
	}
}

func ensureKEK(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "kek.bin")
	if _, err := os.Stat(path); err == nil {
		return
	}
	k, err := kek.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	k.Destroy()
}

// seedWallet records an active wallet of the committed fixture key at the
// coordinator and stores each signer's share in its data folder, before
// the signer processes start.
func (d *procDeployment) seedWallet(t *testing.T) (string, []byte) {
	t.Helper()
	ctx := t.Context()
	cfgs := mpctest.Configs(t, 3, 2)
	pub, err := mpc.PublicKey(cfgs[party.ID("signer-1")])
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletCreating, Threshold: 2, Signers: procSigners}
	keygen := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, KeyScheme: store.KeySchemeSecp256k1, WalletID: w.ID,
		State: store.CeremonyWaiting, Threshold: 2, GroupSigners: procSigners}
	if _, _, err := d.store.CreateWallet(ctx, w, store.Work{Ceremony: keygen}); err != nil {
		t.Fatal(err)
	}
	if err := d.store.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: keygen.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: pub}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range procSigners {
		dir := d.h.SignerDir(name)
		ensureKEK(t, dir)
		paths := d.h.PKI.Nodes[name]
		s, err := signer.New(ctx, signer.Config{CoordinatorURL: d.replicas[0].NodeURL, CertFile: paths.CertPath, KeyFile: paths.KeyPath,
			CAFile: d.h.PKI.CAPath, KEKFile: filepath.Join(dir, "kek.bin"), SQLitePath: filepath.Join(dir, "shares.db"), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		if err := signer.ImportShare(ctx, s, w.ID, keygen.ID, cfgs[party.ID(name)]); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return w.ID, pub
}

func procClient(token, apiURL string) walletv1connect.WalletServiceClient {
	return walletv1connect.NewWalletServiceClient(servertest.H2CClient(), apiURL,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
}

func waitProcSignature(t *testing.T, api walletv1connect.WalletServiceClient, id string, timeout time.Duration) *walletv1.Signature {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := api.GetSignature(t.Context(), connect.NewRequest(&walletv1.GetSignatureRequest{Id: id, Wait: durationpb.New(10 * time.Second)}))
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Msg.GetSignature(); s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("signature %s still pending after %s", id, timeout)
		}
	}
}

func waitProcWallet(t *testing.T, api walletv1connect.WalletServiceClient, id string, timeout time.Duration) *walletv1.Wallet {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := api.GetWallet(t.Context(), connect.NewRequest(&walletv1.GetWalletRequest{Id: id, Wait: durationpb.New(20 * time.Second)}))
		if err != nil {
			t.Fatal(err)
		}
		if w := res.Msg.GetWallet(); w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_CREATING {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("wallet %s still creating after %s", id, timeout)
		}
	}
}

// TestProcTwoReplicasKeygenAndSign: a key generation asked of one replica
// and signatures asked of each, with the signers spread across both.
func TestProcTwoReplicasKeygenAndSign(t *testing.T) {
	d := startProcDeployment(t)
	d.startSigners(t)
	ctx := t.Context()
	kg, err := d.api[0].CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "two replicas"}))
	if err != nil {
		t.Fatal(err)
	}
	w := waitProcWallet(t, d.api[1], kg.Msg.GetWallet().GetId(), 5*time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("key generation: %v %q", w.GetStatus(), w.GetFailureReason())
	}
	for i, api := range d.api {
		res, err := api.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: w.GetId(),
			Payload: &walletv1.CreateSignatureRequest_Message{Message: "through replica " + strconv.Itoa(i+1)}}))
		if err != nil {
			t.Fatal(err)
		}
		verifySignature(t, w.GetPublicKey(), waitProcSignature(t, d.api[(i+1)%2], res.Msg.GetSignature().GetId(), 2*time.Minute))
	}
}

// runningSignOwner returns the running signing ceremony of signature id
// and the replica holding its lease, or nil.
func (d *procDeployment) runningSignOwner(t *testing.T, sigID string) (*store.Ceremony, *proctest.Server) {
	t.Helper()
	return d.runningOwner(t, func(c *store.Ceremony) bool { return c.SignatureID == sigID })
}

// killOwnerMidCeremony waits until the ceremony that match picks runs,
// freezes (SIGSTOP) the replica holding its lease, checks it still runs
// under that lease, and kills the replica (SIGKILL): the fault happens
// mid-ceremony, not after. It returns the ceremony and the other replica's
// API.
func (d *procDeployment) killOwnerMidCeremony(t *testing.T, what string, match func(*store.Ceremony) bool) (*store.Ceremony, walletv1connect.WalletServiceClient) {
	t.Helper()
	var victim *proctest.Server
	var c *store.Ceremony
	proctest.Eventually(t, time.Minute, "the "+what+" to run", func() (bool, error) {
		c, victim = d.runningOwner(t, match)
		return victim != nil, nil
	})
	victim.Stop()
	if got, err := d.store.GetCeremony(t.Context(), c.ID); err != nil || got.State != store.CeremonyRunning || got.Lease.Epoch != c.Lease.Epoch {
		victim.Continue()
		t.Fatalf("the %s finished before the kill (%v, %v): rerun", what, got, err)
	}
	victim.Kill()
	if victim == d.replicas[0] {
		return c, d.api[1]
	}
	return c, d.api[0]
}

// runningOwner returns the running ceremony that match picks and the
// replica holding its lease, or nil.
func (d *procDeployment) runningOwner(t *testing.T, match func(*store.Ceremony) bool) (*store.Ceremony, *proctest.Server) {
	t.Helper()
	open, err := d.store.OpenCeremonies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range open {
		if !match(c) || c.State != store.CeremonyRunning {
			continue
		}
		for _, r := range d.replicas {
			if strings.HasPrefix(c.Lease.Owner, r.Name+"-") {
				return c, r
			}
		}
	}
	return nil, nil
}

// TestProcReplicaKilledMidSigning kills (SIGKILL) the replica that owns a
// running signature's ceremony; the signature still completes, through the
// other replica, once, with a signature that verifies.
func TestProcReplicaKilledMidSigning(t *testing.T) {
	d := startProcDeployment(t)
	walletID, pub := d.seedWallet(t)
	d.startSigners(t)
	ctx := t.Context()
	res, err := d.api[0].CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: walletID,
		Payload: &walletv1.CreateSignatureRequest_Message{Message: "the owner dies"}}))
	if err != nil {
		t.Fatal(err)
	}
	sigID := res.Msg.GetSignature().GetId()
	c, survivor := d.killOwnerMidCeremony(t, "signing", func(c *store.Ceremony) bool { return c.SignatureID == sigID })
	s := waitProcSignature(t, survivor, sigID, 2*time.Minute)
	verifySignature(t, pub, s)
	var succeeded int
	if err := d.store.DB().GetContext(ctx, &succeeded, d.store.DB().Rebind(`SELECT COUNT(*) FROM ceremonies WHERE signature_id = ? AND state = ?`),
		sigID, string(store.CeremonySucceeded)); err != nil {
		t.Fatal(err)
	}
	if succeeded != 1 {
		t.Fatalf("%d signing ceremonies succeeded for one signature", succeeded)
	}
	if got, err := d.store.GetCeremony(ctx, c.ID); err == nil {
		t.Logf("the killed replica's ceremony ended %s (%q); the signature took %d attempt(s)", got.State, got.FailureReason, succeededAttempt(t, d, sigID)+1)
	}
}

// TestProcReplicaKilledMidKeygen kills (SIGKILL) the replica that owns a
// running key generation. The other replica takes the ceremony over when
// its lease lapses and starts the key generation again with the same
// signers; the wallet becomes active with one key, each signer keeps one
// active share of it and nothing pending, and the key signs.
func TestProcReplicaKilledMidKeygen(t *testing.T) {
	d := startProcDeployment(t)
	d.startSigners(t)
	ctx := t.Context()
	res, err := d.api[0].CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "the owner dies mid-keygen"}))
	if err != nil {
		t.Fatal(err)
	}
	walletID := res.Msg.GetWallet().GetId()
	c, survivor := d.killOwnerMidCeremony(t, "key generation", func(c *store.Ceremony) bool { return c.WalletID == walletID })
	w := waitProcWallet(t, survivor, walletID, 5*time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("wallet after its replica died mid-keygen: %v %q", w.GetStatus(), w.GetFailureReason())
	}
	lost, err := d.store.GetCeremony(ctx, c.ID)
	if err != nil || lost.State != store.CeremonyFailed || !strings.Contains(lost.FailureReason, "stopped or restarted") {
		t.Fatalf("the killed replica's key generation = %+v, %v", lost, err)
	}
	var succeeded []struct {
		ID      string `db:"id"`
		Attempt int    `db:"attempt"`
	}
	if err := d.store.DB().SelectContext(ctx, &succeeded, d.store.DB().Rebind(`SELECT id, attempt FROM ceremonies WHERE wallet_id = ? AND state = ?`),
		walletID, string(store.CeremonySucceeded)); err != nil {
		t.Fatal(err)
	}
	if len(succeeded) != 1 || succeeded[0].Attempt < 1 {
		t.Fatalf("succeeded key generations: %+v, want one retry", succeeded)
	}
	// Each signer settles the lost attempt's share (if it stored one)
	// and activates the new one.
	for _, name := range procSigners {
		proctest.Eventually(t, time.Minute, name+"'s share to be the only one, active", func() (bool, error) {
			states, err := signerShareStates(ctx, d.h.SignerDir(name), walletID)
			return len(states) == 1 && states[0] == "active", err
		})
	}
	sig, err := survivor.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: walletID,
		Payload: &walletv1.CreateSignatureRequest_Message{Message: "made after a lost key generation"}}))
	if err != nil {
		t.Fatal(err)
	}
	verifySignature(t, w.GetPublicKey(), waitProcSignature(t, survivor, sig.Msg.GetSignature().GetId(), 2*time.Minute))
}

// signerShareStates reads the states of the shares a signer process keeps
// of a wallet, from its database in dir (shares.db, as `sigil signer`
// names it).
func signerShareStates(ctx context.Context, dir, walletID string) ([]string, error) {
	sdb, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(dir, "shares.db")})
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	var states []string
	err = sdb.SelectContext(ctx, &states, `SELECT state FROM shares WHERE wallet_id = ? ORDER BY key_epoch`, walletID)
	return states, err
}

func succeededAttempt(t *testing.T, d *procDeployment, sigID string) int {
	t.Helper()
	var attempt int
	if err := d.store.DB().GetContext(t.Context(), &attempt, d.store.DB().Rebind(`SELECT attempt FROM ceremonies WHERE signature_id = ? AND state = ?`),
		sigID, string(store.CeremonySucceeded)); err != nil {
		t.Fatal(err)
	}
	return attempt
}

// TestProcQueuedWallets asks for SIGIL_TEST_MPC_WALLETS (default 12) MPC
// wallets at once, half of each replica, with the key pool off: with each
// signer bounded to --max-concurrent-ceremonies 2 they queue, and every one
// becomes active.
func TestProcQueuedWallets(t *testing.T) {
	n := 12
	if v := os.Getenv("SIGIL_TEST_MPC_WALLETS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("SIGIL_TEST_MPC_WALLETS=%q: want a positive count", v)
		}
	}
	d := startProcDeployment(t, "--max-concurrent-ceremonies", "2", "--mpc-wallet-rate", "off")
	d.startSigners(t)
	ctx := t.Context()
	start := time.Now()
	idsCh := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := d.api[i%2].CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "queued " + strconv.Itoa(i)}))
			if err != nil {
				t.Error(err)
				return
			}
			idsCh <- res.Msg.GetWallet().GetId()
		}()
	}
	wg.Wait()
	close(idsCh)
	if t.Failed() {
		t.FailNow()
	}
	for id := range idsCh {
		w := waitProcWallet(t, d.api[0], id, time.Duration(n)*2*time.Minute)
		if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
			t.Fatalf("wallet %s: %v %q", id, w.GetStatus(), w.GetFailureReason())
		}
	}
	t.Logf("%d MPC wallets active %s after being asked at once", n, time.Since(start).Round(time.Second))
	// They queued: from each key generation's start (its deadline less the
	// default --keygen-timeout) to its end, no more than two ran at once.
	var spans []struct {
		Deadline int64 `db:"deadline"`
		End      int64 `db:"updated_at"`
	}
	if err := d.store.DB().SelectContext(ctx, &spans, d.store.DB().Rebind(`SELECT deadline, updated_at FROM ceremonies WHERE kind = ? AND state = ?`),
		string(store.CeremonyKeygen), string(store.CeremonySucceeded)); err != nil {
		t.Fatal(err)
	}
	if len(spans) != n {
		t.Fatalf("%d key generations succeeded, want %d (one each, none retried)", len(spans), n)
	}
	most := 0
	for _, a := range spans {
		at, running := a.Deadline-(5*time.Minute).Microseconds(), 0
		for _, b := range spans {
			if bs := b.Deadline - (5 * time.Minute).Microseconds(); bs <= at && at < b.End {
				running++
			}
		}
		most = max(most, running)
	}
	if most > 2 {
		t.Fatalf("%d key generations ran at once with --max-concurrent-ceremonies 2", most)
	}
	t.Logf("at most %d key generations ran at once", most)
}

// TestProcReplicaPausedPastItsLease freezes (SIGSTOP) the replica that owns
// a running signature's ceremony and kills one of the ceremony's signers,
// so the ceremony can only end through its owner. The other replica takes
// the lease over once it lapses, fails the attempt and retries it with the
// remaining signers; the signature completes once. The frozen replica then
// resumes and does not act on the lease it lost.
func TestProcReplicaPausedPastItsLease(t *testing.T) {
	d := startProcDeployment(t)
	walletID, pub := d.seedWallet(t)
	// Every signer is connected to replica-2, so freezing replica-1 leaves
	// them all online.
	for _, name := range procSigners {
		d.signers[name] = d.h.StartSigner(name, []string{d.replicas[1].NodeURL, d.replicas[0].NodeURL})
	}
	ctx := t.Context()
	owner := d.replicas[0]
	var c *store.Ceremony
	var sigID string
	for try := 0; c == nil; try++ {
		if try == 5 {
			t.Fatal("no signature asked of replica-1 ran under its lease")
		}
		res, err := d.api[0].CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: walletID,
			Payload: &walletv1.CreateSignatureRequest_Message{Message: "frozen owner " + strconv.Itoa(try)}}))
		if err != nil {
			t.Fatal(err)
		}
		sigID = res.Msg.GetSignature().GetId()
		var by *proctest.Server
		proctest.Eventually(t, time.Minute, "the signing ceremony to run", func() (bool, error) {
			c, by = d.runningSignOwner(t, sigID)
			return by != nil, nil
		})
		if by != owner {
			c = nil
			waitProcSignature(t, d.api[1], sigID, 2*time.Minute)
			continue
		}
		owner.Stop()
		got, err := d.store.GetCeremony(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.CeremonyRunning {
			owner.Continue()
			c = nil // it finished before the freeze; try again
			continue
		}
		d.signers[c.Parties[0]].Kill()
	}
	s := waitProcSignature(t, d.api[1], sigID, 2*time.Minute)
	verifySignature(t, pub, s)
	taken, err := d.store.GetCeremony(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if taken.State != store.CeremonyFailed || !strings.Contains(taken.FailureReason, "stopped or restarted") ||
		!strings.HasPrefix(taken.Lease.Owner, "replica-2-") || taken.Lease.Epoch != c.Lease.Epoch+1 {
		t.Fatalf("frozen replica's ceremony: %s %q, lease %+v", taken.State, taken.FailureReason, taken.Lease)
	}
	// The frozen replica resumes; a signature through it completes (it is
	// working again), and the taken-over ceremony is as the other left it.
	owner.Continue()
	res, err := d.api[0].CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: walletID,
		Payload: &walletv1.CreateSignatureRequest_Message{Message: "after the thaw"}}))
	if err != nil {
		t.Fatal(err)
	}
	verifySignature(t, pub, waitProcSignature(t, d.api[0], res.Msg.GetSignature().GetId(), 2*time.Minute))
	after, err := d.store.GetCeremony(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != taken.State || after.FailureReason != taken.FailureReason || after.Lease != taken.Lease {
		t.Fatalf("the resumed replica changed the ceremony it lost: %+v", after)
	}
	var succeeded int
	if err := d.store.DB().GetContext(ctx, &succeeded, d.store.DB().Rebind(`SELECT COUNT(*) FROM ceremonies WHERE signature_id = ? AND state = ?`),
		sigID, string(store.CeremonySucceeded)); err != nil {
		t.Fatal(err)
	}
	if succeeded != 1 {
		t.Fatalf("%d signing ceremonies succeeded for one signature", succeeded)
	}
}
