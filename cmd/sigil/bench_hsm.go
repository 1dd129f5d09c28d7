package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/pki"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/auth"
)

// benchHSMDrivers are the dev-PKI names of the benchmark's drivers; the
// full stack is measured with the first one, then with both.
var benchHSMDrivers = []string{"driver-1", "driver-2"}

func benchHSMCommand() *command {
	return &command{
		name:    "bench hsm",
		summary: "measure HSM signing throughput: raw PKCS#11 on SoftHSM2 vs the full stack with 1 and 2 drivers",
		usage: `Measures, in one run on this machine:

  - raw PKCS#11 throughput on SoftHSM2: unwrap a wrapped key, sign, destroy
    (what one sign job asks of the HSM), with --sessions callers at once on
    one token: the limit;
  - full-stack throughput: --requests signature requests queued through the
    wallet API of a coordinator, then drained by one HSM driver, and again by
    two drivers on two tokens holding the same imported master key (claim,
    sign, verify and record included), timed until the client sees the last
    one signed (a long-polling GetSignature on the last request, then
    ListSignatures pages, as a client that queued a batch would wait);
  - what reading each result with its own GetSignature costs, after the
    first one-driver drain.

A machine's speed drifts (on a shared host by a fifth within a minute), so
the measurements alternate: a raw segment of --requests/2 signatures, then
each drain followed by another raw segment, --rounds times over. Each drain
is compared with the raw segments on either side of it; the ratio shown is
the median over the rounds, and each round's is listed below it.

It prints each in signatures per second with its ratio to raw, and the CPU
per signature of this process and (from /proc/stat) of the whole machine,
which with a local PostgreSQL includes the database server. Everything
(tokens, coordinator, drivers) is made in a temporary folder and removed at the
end; with --database-url the coordinator and the driver database use a fresh
PostgreSQL schema, dropped at the end. Needs SoftHSM2 (apt-get install softhsm2).
All parts share this machine's cores.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var requests, sessions, rounds int
			var databaseURL, cpuProfile string
			fs.IntVar(&requests, "requests", 500, "signature requests per drain (each raw segment signs half as many)")
			fs.IntVar(&rounds, "rounds", 3, "how many times each drain is measured, between raw segments")
			fs.IntVar(&sessions, "sessions", hsm.DefaultSessions, "PKCS#11 sessions per token, and jobs at once per driver")
			fs.StringVar(&databaseURL, "database-url", "", "PostgreSQL URL for the coordinator and the driver database (a temporary schema in it); default SQLite in the temporary folder")
			fs.StringVar(&cpuProfile, "cpu-profile", "", "write a Go CPU profile of the first one-driver drain to this file (go tool pprof)")
			env.addLogFlags(fs)
			// Only trouble is worth printing beside the table.
			env.logLevel = "warn"
			fs.Lookup("log-level").DefValue = "warn"
			return func() error {
				if requests < 2 || sessions < 1 || rounds < 1 {
					return fmt.Errorf("%w: --requests must be at least 2, --sessions and --rounds at least 1", errUsage)
				}
				if databaseURL != "" && !strings.HasPrefix(databaseURL, "postgres://") && !strings.HasPrefix(databaseURL, "postgresql://") {
					return fmt.Errorf("%w: --database-url: want a postgres:// URL, or nothing for SQLite", errUsage)
				}
				logger, err := env.logger()
				if err != nil {
					return err
				}
				segments := rounds*len(benchHSMDrivers) + 1
				fmt.Fprintf(env.stderr, "bench hsm: %d rounds of drains of %d requests with 1 and %d drivers, between %d raw PKCS#11 segments of %d signatures ...\n",
					rounds, requests, len(benchHSMDrivers), segments, requests/2)
				res, err := runBenchHSM(env.ctx, benchHSMOptions{requests: requests, rounds: rounds, sessions: sessions, databaseURL: databaseURL, cpuProfile: cpuProfile, logger: logger})
				if err != nil {
					return err
				}
				return res.WriteTable(env.stdout)
			}
		},
	}
}

type benchHSMOptions struct {
	requests, rounds, sessions int
	databaseURL                string
	cpuProfile                 string
	logger                     *slog.Logger
}

// runBenchHSM builds the benchmark's deployment in a temporary folder,
// runs driver.Bench on it and takes it down again.
func runBenchHSM(ctx context.Context, o benchHSMOptions) (*driver.BenchResult, error) {
	if !cluster.SoftHSMAvailable() {
		return nil, fmt.Errorf("SoftHSM2 not found (module %s and softhsm2-util): install it with `apt-get install softhsm2`", cluster.SoftHSMModule)
	}
	dir, err := os.MkdirTemp("", "sigil-bench-hsm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tokens, err := cluster.SoftHSMTokens(ctx, filepath.Join(dir, "softhsm"), o.sessions, "bench-1", "bench-2")
	if err != nil {
		return nil, err
	}
	dbURL := o.databaseURL
	if dbURL != "" {
		var drop func() error
		if dbURL, drop, err = benchSchema(ctx, dbURL); err != nil {
			return nil, err
		}
		defer func() { _ = drop() }()
	}
	p, err := pki.EnsureDevPKI(filepath.Join(dir, "pki"), nil, benchHSMDrivers)
	if err != nil {
		return nil, fmt.Errorf("dev PKI: %w", err)
	}
	attestKeys := filepath.Join(dir, "hsm-attestation-keys.pem")
	if err := cluster.EnsureAttestationKeys(ctx, attestKeys, tokens...); err != nil {
		return nil, err
	}
	srv, stop, err := benchCoordinator(ctx, p, dbURL, filepath.Join(dir, "coordinator"), attestKeys, o.logger)
	if err != nil {
		return nil, err
	}
	defer stop()
	client, err := benchClient(ctx, srv, "sigil bench hsm")
	if err != nil {
		return nil, err
	}
	bench := driver.Bench{Raw: tokens[0], RawSignatures: (o.rounds*len(benchHSMDrivers) + 1) * (o.requests / 2), StackRequests: o.requests,
		Rounds: o.rounds, API: client.Service()}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, fmt.Errorf("--cpu-profile: %w", err)
		}
		defer f.Close()
		bench.Profile = func() func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				o.logger.Warn("--cpu-profile: not profiling", "error", err)
				return func() {}
			}
			return pprof.StopCPUProfile
		}
	}
	for i, name := range benchHSMDrivers {
		paths := p.Nodes[name]
		bench.Drivers = append(bench.Drivers, driver.Config{
			NodeURL: "https://" + srv.Addr("node"), TLSCert: paths.CertPath, TLSKey: paths.KeyPath, NodeCA: p.CAPath,
			ServerName: "localhost", HSM: tokens[i], Concurrency: o.sessions,
			// One driver database for both drivers: SQLite in one folder,
			// or the PostgreSQL schema the coordinator uses too.
			DatabaseURL: dbURL, DataDir: filepath.Join(dir, "driver-db"),
			Logger: o.logger.With("driver", name),
		})
	}
	if err := os.MkdirAll(filepath.Join(dir, "driver-db"), 0o700); err != nil {
		return nil, err
	}
	return bench.Run(ctx)
}

// benchCoordinator starts a coordinator with the HSM backend on loopback.
func benchCoordinator(ctx context.Context, p *pki.DevPKI, databaseURL, dataDir, attestKeys string, logger *slog.Logger) (*server.Server, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	srv, err := server.New(ctx, server.Config{
		APIAddr: "127.0.0.1:0", NodeAddr: "127.0.0.1:0", DataDir: dataDir, DatabaseURL: databaseURL,
		NodeTLSCert: p.ServerCert, NodeTLSKey: p.ServerKey, NodeClientCA: p.CAPath,
		HSM: true, HSMAttestationKeys: []string{attestKeys}, Logger: logger.With("component", "coordinator"),
	})
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("coordinator: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			logger.Error("coordinator stopped", "error", err)
		}
	}()
	return srv, func() {
		cancel()
		<-done
		_ = srv.Close()
	}, nil
}

// benchClient mints an admin token and returns a Go SDK client of the
// coordinator's API port using it.
func benchClient(ctx context.Context, srv *server.Server, description string) (*sigil.Client, error) {
	token, err := auth.Mint(ctx, srv.Store(), []auth.Scope{auth.ScopeAdmin}, description)
	if err != nil {
		return nil, err
	}
	return sigil.New(srv.APIURL(), sigil.WithToken(token))
}

// benchSchema creates a schema of its own in the PostgreSQL database of
// rawURL and returns a URL using it and the function that drops it.
func benchSchema(ctx context.Context, rawURL string) (string, func() error, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, errors.New("--database-url is not a URL") // never echo it: it may hold a password
	}
	admin, err := db.Open(ctx, db.Config{URL: rawURL})
	if err != nil {
		return "", nil, fmt.Errorf("--database-url: %w", err)
	}
	// The name is ours (a fixed prefix and hex), so formatting it into DDL is safe.
	schema := "sigil_bench_" + benchRandomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = admin.Close()
		return "", nil, fmt.Errorf("create schema %s: %w", schema, err)
	}
	q := u.Query()
	q.Set("search_path", schema) // pgx sends unknown URL parameters as run-time settings
	u.RawQuery = q.Encode()
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		_, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
		return errors.Join(err, admin.Close())
	}
	return u.String(), drop, nil
}

func benchRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
