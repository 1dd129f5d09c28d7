package driver_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/server/jobs"
)

// BenchmarkHSMThroughput runs driver.Bench (the measurement behind `sigil
// bench hsm`) once per iteration on a PostgreSQL coordinator and driver
// database, with two SoftHSM tokens holding the same master key and 4
// sessions and 4 jobs at once per driver, and prints the table. Run it once:
//
//	SIGIL_TEST_POSTGRES=postgres://... go test -run '^$' -bench HSMThroughput -benchtime 1x ./hsm/driver/
func BenchmarkHSMThroughput(b *testing.B) {
	const workers = 4
	cfgs, _ := tokens(b, "bench-1", "bench-2")
	for i := range cfgs {
		cfgs[i].Sessions = workers
	}
	for b.Loop() {
		d := deploy(b, db.Postgres, jobs.Config{}, cfgs, "driver-a", "driver-b")
		driverDB := dbtest.PostgresURL(b)
		bench := driver.Bench{
			Raw: cfgs[0], RawSignatures: 3500, StackRequests: 1000, Rounds: 3, API: d.api,
			Drivers: []driver.Config{
				d.driverConfig(b, driverOpts{name: "driver-a", hsm: cfgs[0], databaseURL: driverDB, concurrency: workers}),
				d.driverConfig(b, driverOpts{name: "driver-b", hsm: cfgs[1], databaseURL: driverDB, concurrency: workers}),
			},
		}
		res, err := bench.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Raw, "raw-sig/s")
		b.ReportMetric(res.Stack[0], "1driver-sig/s")
		b.ReportMetric(res.Stack[1], "2drivers-sig/s")
		if err := res.WriteTable(os.Stdout); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchRuns runs the whole benchmark small on SQLite, two rounds,
// watching the drains through pages of 7 so that a drain spans several
// pages, and checks every figure came out: a raw segment before the drains
// and one after each, a ratio per drain against its neighbours; the drains
// end only when ListSignatures shows every request signed, and reading
// each one back finds it signed.
func TestBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs SoftHSM2, a coordinator and two drivers")
	}
	cfgs, _ := tokens(t, "bench-1", "bench-2")
	d := deploy(t, db.SQLite, jobs.Config{}, cfgs, "driver-a", "driver-b")
	shared := t.TempDir() // one driver database, as the wrapped keys must be
	bench := driver.Bench{
		Raw: cfgs[0], RawSignatures: 50, StackRequests: 30, Rounds: 2, API: d.api, PageSize: 7,
		Drivers: []driver.Config{
			d.driverConfig(t, driverOpts{name: "driver-a", hsm: cfgs[0], dataDir: shared, concurrency: 2}),
			d.driverConfig(t, driverOpts{name: "driver-b", hsm: cfgs[1], dataDir: shared, concurrency: 2}),
		},
	}
	res, err := bench.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Raw <= 0 || len(res.RawSegments) != 5 || res.RawSignatures != 50 || len(res.Stack) != 2 || res.Stack[0] <= 0 || res.Stack[1] <= 0 ||
		res.Reads <= 0 || res.ReadCPU <= 0 {
		t.Fatalf("figures missing: %+v", res)
	}
	for i, ratios := range res.Ratios {
		if len(ratios) != 2 || slices.Contains(ratios, 0) || res.Ratio(i) < min(ratios[0], ratios[1]) || res.Ratio(i) > max(ratios[0], ratios[1]) {
			t.Fatalf("ratios with %d drivers: %v, median %v; want two, the median between them", i+1, ratios, res.Ratio(i))
		}
	}
	var out strings.Builder
	if err := res.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"raw PKCS#11", "5 segments", "1 driver", "2 drivers", "2 drains of 30", "reading each result"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("the table has no %q:\n%s", want, out.String())
		}
	}
}
