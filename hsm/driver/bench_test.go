package driver_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/server/jobs"
)

// BenchmarkHSMThroughput measures, in one run, the signing throughput of
//
//   - the HSM itself: hsm.Sign (C_UnwrapKey + C_Sign + C_DestroyObject, plus
//     low-S and recovery id in Go) on one SoftHSM token with 4 sessions, 4
//     callers at once: the limit a driver can reach;
//   - the whole stack: signature requests already queued on a PostgreSQL
//     coordinator, drained by 1 and then by 2 drivers (each on its own
//     token, 4 sessions and 4 jobs at once, sharing a PostgreSQL driver
//     database), claim, sign, verify and record included;
//
// and prints the figures and their ratios. Run it once:
//
//	SIGIL_TEST_POSTGRES=postgres://... go test -run '^$' -bench HSMThroughput -benchtime 1x ./hsm/driver/
//
// All drivers, the coordinator and PostgreSQL share the machine's cores, so
// a second driver only helps where the first leaves cores idle.
func BenchmarkHSMThroughput(b *testing.B) {
	const (
		rawN    = 3000
		stackN  = 1000
		workers = 4
	)
	cfgs, _ := tokens(b, "bench-1", "bench-2")
	for i := range cfgs {
		cfgs[i].Sessions = workers
	}
	for b.Loop() {
		raw := rawThroughput(b, cfgs[0], rawN, workers)
		d := deploy(b, db.Postgres, jobs.Config{}, "driver-a", "driver-b")
		driverDB := dbtest.PostgresURL(b)
		// Keygen with one driver, which then stops: the queue is filled
		// before each measured run.
		_, stop := d.startDriverStop(b, driverOpts{name: "driver-a", hsm: cfgs[0], databaseURL: driverDB, concurrency: workers})
		w := d.activeWallet(b)
		stop()
		one := stackThroughput(b, d, w.GetId(), stackN, []driverOpts{
			{name: "driver-a", hsm: cfgs[0], databaseURL: driverDB, concurrency: workers},
		})
		two := stackThroughput(b, d, w.GetId(), stackN, []driverOpts{
			{name: "driver-a", hsm: cfgs[0], databaseURL: driverDB, concurrency: workers},
			{name: "driver-b", hsm: cfgs[1], databaseURL: driverDB, concurrency: workers},
		})
		b.ReportMetric(raw, "raw-sig/s")
		b.ReportMetric(one, "1driver-sig/s")
		b.ReportMetric(two, "2drivers-sig/s")
		fmt.Printf("HSM throughput (SoftHSM2, %d sessions per token):\n", workers)
		fmt.Printf("  raw hsm.Sign, unwrap+sign+destroy, 1 token:  %7.0f sig/s  (%d signatures)\n", raw, rawN)
		fmt.Printf("  full stack, 1 driver:                        %7.0f sig/s  (%d requests)  = %.2f of raw\n", one, stackN, one/raw)
		fmt.Printf("  full stack, 2 drivers:                       %7.0f sig/s  (%d requests)  = %.2f of raw, %.2fx one driver\n", two, stackN, two/raw, two/one)
	}
}

// rawThroughput signs n digests on one token with `workers` goroutines.
func rawThroughput(b *testing.B, cfg hsm.Config, n, workers int) float64 {
	ctx := context.Background()
	h, err := hsm.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			digest := make([]byte, 32)
			for left.Add(-1) >= 0 {
				_, _ = rand.Read(digest)
				if _, err := h.Sign(ctx, wrapped, pub, digest); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// stackThroughput queues n signature requests, then starts the drivers and
// times them until every request is signed.
func stackThroughput(b *testing.B, d *deployment, walletID string, n int, drivers []driverOpts) float64 {
	b.Helper()
	createSignatures(b, d, walletID, n, 8)
	st := d.env.Server.Store()
	start := time.Now()
	var stops []func()
	for _, o := range drivers {
		_, stop := d.startDriverStop(b, o)
		stops = append(stops, stop)
	}
	waitFor(b, 120*time.Second, "the queue to drain", func() bool {
		var pending int
		if err := st.DB().GetContext(context.Background(), &pending, `SELECT COUNT(*) FROM signatures WHERE status = 'pending'`); err != nil {
			b.Fatal(err)
		}
		return pending == 0
	})
	elapsed := time.Since(start)
	for _, stop := range stops {
		stop()
	}
	return float64(n) / elapsed.Seconds()
}
