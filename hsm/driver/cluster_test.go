package driver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	driverv1 "github.com/sigil-wallet/sigil/gen/go/sigil/driver/v1"
	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/server/jobs"
	"github.com/sigil-wallet/sigil/server/store"
)

// completions counts accepted results per job, across drivers.
type completions struct {
	mu     sync.Mutex
	byJob  map[string]int
	bySig  map[string]int
	driver map[string]int // all completions by driver
	signs  map[string]int // sign completions by driver
}

func newCompletions() *completions {
	return &completions{byJob: map[string]int{}, bySig: map[string]int{}, driver: map[string]int{}, signs: map[string]int{}}
}

func (c *completions) hook(name string) func(*driverv1.Job) {
	return func(j *driverv1.Job) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.byJob[j.GetId()]++
		if j.GetKind() == driverv1.JobKind_JOB_KIND_SIGN {
			c.bySig[j.GetSignatureId()]++
			c.signs[name]++
		}
		c.driver[name]++
	}
}

// createSignatures asks for n hash signatures with `workers` concurrent
// API clients and returns their ids and digests.
func createSignatures(t testing.TB, d *deployment, walletID string, n, workers int) map[string][]byte {
	t.Helper()
	var mu sync.Mutex
	out := make(map[string][]byte, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				var b [8]byte
				binary.BigEndian.PutUint64(b[:], uint64(i))
				h := sha256.Sum256(b[:])
				resp, err := d.api.CreateSignature(context.Background(), connect.NewRequest(&walletv1.CreateSignatureRequest{
					WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: h[:]},
				}))
				if err != nil {
					t.Errorf("CreateSignature %d: %v", i, err)
					continue
				}
				mu.Lock()
				out[resp.Msg.GetSignature().GetId()] = h[:]
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(out) != n {
		t.Fatalf("created %d signature requests, want %d", len(out), n)
	}
	return out
}

// waitAllSigned waits until no signature of the store is pending, then
// checks each of want is signed with a valid low-S signature.
func waitAllSigned(t *testing.T, st *store.SQL, pub []byte, want map[string][]byte, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, "every signature to be signed", func() bool {
		var pending int
		if err := st.DB().GetContext(context.Background(), &pending, `SELECT COUNT(*) FROM signatures WHERE status = 'pending'`); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	for id, digest := range want {
		sg, err := st.GetSignature(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if sg.Status != store.SignatureSigned {
			t.Fatalf("signature %s is %s (%s)", id, sg.Status, sg.FailureReason)
		}
		if !bytes.Equal(sg.Digest, digest) {
			t.Fatalf("signature %s: digest differs from the request", id)
		}
		var r, s secp256k1.ModNScalar
		r.SetByteSlice(sg.R)
		s.SetByteSlice(sg.S)
		if s.IsOverHalfOrder() || !ecdsa.NewSignature(&r, &s).Verify(digest, pk) {
			t.Fatalf("signature %s does not verify (decred)", id)
		}
	}
}

// TestActiveActive: three drivers on two SoftHSM tokens holding the same
// imported master key, one shared PostgreSQL driver database, a PostgreSQL
// coordinator, and 1,000 signature requests: all are signed, none is lost
// and none is completed twice.
func TestActiveActive(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 signatures on three drivers; skipped with -short")
	}
	cfgs, _ := tokens(t, "aa-1", "aa-2")
	d := deploy(t, db.Postgres, jobs.Config{}, cfgs, "driver-a", "driver-b", "driver-c")
	driverDB := dbtest.PostgresURL(t)
	done := newCompletions()
	for i, name := range []string{"driver-a", "driver-b", "driver-c"} {
		d.startDriver(t, driverOpts{name: name, hsm: cfgs[i%2], databaseURL: driverDB, concurrency: 2, onComplete: done.hook(name)})
	}
	w := d.activeWallet(t)
	const n = 1000
	start := time.Now()
	sigs := createSignatures(t, d, w.GetId(), n, 8)
	st := d.env.Server.Store()
	waitAllSigned(t, st, w.GetPublicKey(), sigs, 90*time.Second)
	t.Logf("1,000 signatures in %v across drivers %v", time.Since(start).Round(time.Millisecond), done.driver)

	done.mu.Lock()
	defer done.mu.Unlock()
	for id := range sigs {
		if c := done.bySig[id]; c != 1 {
			t.Errorf("signature %s completed %d times, want once", id, c)
		}
	}
	// The coordinator's own record agrees: one job per request, each done
	// once, by a driver that held it.
	var rows []struct {
		State    string `db:"state"`
		LeasedBy string `db:"leased_by"`
		N        int    `db:"n"`
	}
	if err := st.DB().SelectContext(context.Background(), &rows,
		`SELECT state, leased_by, COUNT(*) AS n FROM jobs WHERE kind = 'sign' GROUP BY state, leased_by`); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, r := range rows {
		if r.State != string(store.JobDone) {
			t.Errorf("%d sign jobs %s (leased by %s)", r.N, r.State, r.LeasedBy)
		}
		if r.N != done.signs[r.LeasedBy] {
			t.Errorf("driver %s: %d sign jobs done in the store, %d completions reported", r.LeasedBy, r.N, done.signs[r.LeasedBy])
		}
		total += r.N
	}
	if total != n {
		t.Errorf("%d sign jobs done, want %d", total, n)
	}
	for _, name := range []string{"driver-a", "driver-b", "driver-c"} {
		if done.driver[name] == 0 {
			t.Errorf("%s did no work: %v", name, done.driver)
		}
	}
}

// TestDriverKilled runs a driver as a separate process, SIGKILLs it while
// it holds leases, and checks every one of its jobs completes through
// another driver once the (2 s) leases lapse.
func TestDriverKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a driver process and waits for leases to lapse; skipped with -short")
	}
	cfgs, _ := tokens(t, "kill-1", "kill-2")
	d := deploy(t, db.SQLite, jobs.Config{Lease: 2 * time.Second}, cfgs, "driver-child")
	driverDB := dbtest.PostgresURL(t)

	// The child signs slowly (300 ms a signature, 4 at once), so it always
	// holds leases.
	paths := d.env.PKI.Nodes["driver-child"]
	raw, _ := json.Marshal(childConfig{
		NodeURL: d.node.URL, TLSCert: paths.CertPath, TLSKey: paths.KeyPath, NodeCA: d.env.PKI.CAPath, ServerName: "localhost",
		Module: cfgs[0].ModulePath, Token: cfgs[0].TokenLabel, PIN: cfgs[0].PIN, DatabaseURL: driverDB,
		Concurrency: 4, SlowSign: 300 * time.Millisecond,
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	w := d.activeWallet(t) // the child makes the key
	sigs := createSignatures(t, d, w.GetId(), 40, 4)
	st := d.env.Server.Store()

	// Kill it once it holds leases on several jobs and finished some.
	var held []string
	waitFor(t, 30*time.Second, "the child to hold leases", func() bool {
		held = held[:0]
		if err := st.DB().SelectContext(context.Background(), &held,
			`SELECT id FROM jobs WHERE kind = 'sign' AND state = 'leased' AND leased_by = 'driver-child'`); err != nil {
			t.Fatal(err)
		}
		var doneN int
		_ = st.DB().GetContext(context.Background(), &doneN, `SELECT COUNT(*) FROM jobs WHERE kind = 'sign' AND state = 'done'`)
		return len(held) >= 2 && doneN >= 4
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killedAt := time.Now()
	// Re-read after the kill: a job the child completed in the meantime
	// is not one it abandoned.
	var abandoned []string
	for _, id := range held {
		j, err := st.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == store.JobLeased && j.LeasedBy == "driver-child" {
			abandoned = append(abandoned, id)
		}
	}
	if len(abandoned) == 0 {
		t.Fatalf("the child held no lease when killed (stderr: %s)", stderr.String())
	}
	t.Logf("killed the child holding %d leases", len(abandoned))

	// A surviving driver, on the other token, finishes everything.
	d.startDriver(t, driverOpts{name: "driver-x", hsm: cfgs[1], databaseURL: driverDB, concurrency: 2})
	waitAllSigned(t, st, w.GetPublicKey(), sigs, 30*time.Second)
	for _, id := range abandoned {
		j, _ := st.GetJob(context.Background(), id)
		if j.State != store.JobDone || j.LeasedBy != "driver-x" || j.Attempts < 2 {
			t.Errorf("abandoned job %s = %+v, want done by driver-x on a later attempt", id, j)
		}
		if !j.UpdatedAt.After(killedAt.Add(time.Second)) {
			t.Errorf("abandoned job %s finished %v after the kill, before its 2 s lease could lapse", id, j.UpdatedAt.Sub(killedAt))
		}
	}
	if n := gathered(t, d, "sigil_hsm_jobs_released_total", "driver-x"); n < float64(len(abandoned)) {
		t.Errorf("re-leased metric for driver-x = %v, want at least %d", n, len(abandoned))
	}
}

// gathered sums a counter of the DriverService registry for one driver.
func gathered(t *testing.T, d *deployment, name, driver string) float64 {
	t.Helper()
	families, err := d.node.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "driver" && l.GetValue() == driver {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
