package driver_test

import (
	"context"
	"os"
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
			Raw: cfgs[0], RawSignatures: 3000, StackRequests: 1000, API: d.api,
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
