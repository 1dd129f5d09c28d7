package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taurusgroup/multi-party-sig/pkg/party"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/cluster"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

func benchMPCCommand() *command {
	return &command{
		name:    "bench mpc",
		summary: "measure MPC signing and wallet creation, with and without pools, against all parties in one process",
		usage: `Measures, in one run and for each --groups shape (t-of-n):

  - signing latency (p50 and p90 of --signs sequential signatures): with every
    party in this process (the full CMP protocol, and the online round of a
    presignature made beforehand), and through the full stack (wallet API,
    coordinator, relay, mTLS, n signer nodes on loopback) without a
    presignature pool and with a warm one;
  - signing throughput with --inflight requests at once, without and with a
    warm pool;
  - wallet creation through the full stack: with a key generation (no key
    pool) and from a warm key pool (--key-pool keys made first).

Everything runs on this machine, so all parts share its cores. Key generation
time is dominated by the random search for Paillier safe primes and varies
widely from run to run. Takes minutes: each shape runs 2 + --key-pool key
generations.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var groups string
			var o benchMPCOptions
			fs.StringVar(&groups, "groups", "2of3,3of5", "shapes to measure, t-of-n, comma-separated")
			fs.IntVar(&o.signs, "signs", 10, "sequential signatures per full-stack path (p50 and p90 are reported)")
			fs.IntVar(&o.localSigns, "local-signs", 3, "signatures per in-process path")
			fs.IntVar(&o.inflight, "inflight", 5, "signature requests at once for the throughput figures")
			fs.IntVar(&o.keyPool, "key-pool", 2, "pooled keys made, then taken by as many wallet creations")
			return func() error {
				shapes, err := parseShapes(groups)
				if err != nil {
					return fmt.Errorf("%w: --groups: %v", errUsage, err)
				}
				if o.signs < 1 || o.localSigns < 1 || o.inflight < 1 || o.keyPool < 1 {
					return fmt.Errorf("%w: --signs, --local-signs, --inflight and --key-pool must be at least 1", errUsage)
				}
				o.progress = env.stderr
				tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "group\tmeasure\tp50\tp90\tsamples\t")
				for _, sh := range shapes {
					fmt.Fprintf(env.stderr, "bench: %d-of-%d ...\n", sh.t, sh.n)
					rows, err := benchShape(env.ctx, sh, o)
					if err != nil {
						return err
					}
					for _, r := range rows {
						fmt.Fprintf(tw, "%d-of-%d\t%s\t%s\t%s\t%d\t\n", sh.t, sh.n, r.measure, r.p50, r.p90, r.samples)
					}
					_ = tw.Flush()
				}
				return tw.Flush()
			}
		},
	}
}

type shape struct{ t, n int }

func parseShapes(s string) ([]shape, error) {
	var out []shape
	for _, part := range strings.Split(s, ",") {
		ts, ns, ok := strings.Cut(strings.TrimSpace(part), "of")
		t, err1 := strconv.Atoi(ts)
		n, err2 := strconv.Atoi(ns)
		if !ok || err1 != nil || err2 != nil || t < 2 || t > n || n > 16 {
			return nil, fmt.Errorf("%q: want t-of-n like 2of3 with 2 <= t <= n <= 16", part)
		}
		out = append(out, shape{t, n})
	}
	return out, nil
}

type benchMPCOptions struct {
	signs, localSigns, inflight, keyPool int
	progress                             io.Writer
}

// benchRow is one printed figure: latencies, or a throughput in p50.
type benchRow struct {
	measure  string
	p50, p90 string
	samples  int
}

func latencyRow(measure string, ds []time.Duration) benchRow {
	return benchRow{measure: measure, p50: fmtDuration(percentile(ds, 50)), p90: fmtDuration(percentile(ds, 90)), samples: len(ds)}
}

func throughputRow(measure string, n int, elapsed time.Duration) benchRow {
	return benchRow{measure: measure, p50: fmt.Sprintf("%.2f sig/s", float64(n)/elapsed.Seconds()), p90: "-", samples: n}
}

func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(10 * time.Millisecond).String()
}

// percentile is the nearest-rank percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}

func benchShape(ctx context.Context, sh shape, o benchMPCOptions) ([]benchRow, error) {
	local, err := benchLocal(ctx, sh, o)
	if err != nil {
		return nil, err
	}
	full, err := benchFullStack(ctx, sh, o)
	if err != nil {
		return nil, err
	}
	return append(local, full...), nil
}

// benchLocal measures signing with every party in this process.
func benchLocal(ctx context.Context, sh shape, o benchMPCOptions) ([]benchRow, error) {
	ids := make([]party.ID, sh.n)
	for i := range ids {
		ids[i] = party.ID(cluster.SignerName(i + 1))
	}
	fmt.Fprintf(o.progress, "bench: in-process key generation ...\n")
	cfgs, err := mpc.LocalKeygen(ctx, ids, sh.t)
	if err != nil {
		return nil, fmt.Errorf("in-process keygen: %w", err)
	}
	var full, online []time.Duration
	for i := range o.localSigns {
		digest := sha256.Sum256(fmt.Appendf(nil, "local %d", i))
		start := time.Now()
		if _, err := mpc.LocalSign(ctx, cfgs, ids[:sh.t], digest[:]); err != nil {
			return nil, fmt.Errorf("in-process sign: %w", err)
		}
		full = append(full, time.Since(start))
		pres, err := mpc.LocalPresign(ctx, cfgs, ids[:sh.t])
		if err != nil {
			return nil, fmt.Errorf("in-process presign: %w", err)
		}
		start = time.Now()
		if _, err := mpc.LocalPresignOnline(ctx, cfgs, pres, digest[:]); err != nil {
			return nil, fmt.Errorf("in-process online sign: %w", err)
		}
		online = append(online, time.Since(start))
	}
	return []benchRow{
		latencyRow("sign, in process, full protocol", full),
		latencyRow("sign, in process, online round of a presignature", online),
	}, nil
}

// benchFullStack measures the wallet API of a local deployment.
func benchFullStack(ctx context.Context, sh shape, o benchMPCOptions) ([]benchRow, error) {
	dir, err := os.MkdirTemp("", "sigil-bench-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	c, err := cluster.Start(ctx, cluster.Options{Dir: dir, Signers: sh.n, Threshold: sh.t,
		Server: server.Config{APIAddr: "127.0.0.1:0", NodeAddr: "127.0.0.1:0", KeygenTimeout: 15 * time.Minute}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	client, err := benchClient(ctx, c.Server, "sigil bench mpc")
	if err != nil {
		return nil, err
	}
	if err := waitSignersOnline(ctx, c, sh.n); err != nil {
		return nil, err
	}
	wait := sigil.WaitOptions{Timeout: 15 * time.Minute}
	fmt.Fprintf(o.progress, "bench: wallet with a key generation ...\n")
	start := time.Now()
	w, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: "bench"}, wait)
	if err != nil {
		return nil, err
	}
	keygen := []time.Duration{time.Since(start)}

	fmt.Fprintf(o.progress, "bench: signing without a pool ...\n")
	cold, err := benchSigns(ctx, client, w.GetId(), "cold", o.signs)
	if err != nil {
		return nil, err
	}
	coldBurst, err := benchBurst(ctx, client, w.GetId(), "cold burst", o.inflight)
	if err != nil {
		return nil, err
	}

	pool := o.signs + o.inflight
	fmt.Fprintf(o.progress, "bench: filling a pool of %d presignatures ...\n", pool)
	c.Server.SetPoolSizes(0, pool)
	if err := waitCount(ctx, func() (int, error) { return c.Server.Store().PoolSize(ctx) }, pool, 30*time.Minute); err != nil {
		return nil, fmt.Errorf("presignature pool: %w", err)
	}
	c.Server.SetPoolSizes(0, 0) // no refill while measuring; the pool is still used
	warm, err := benchSigns(ctx, client, w.GetId(), "warm", o.signs)
	if err != nil {
		return nil, err
	}
	warmBurst, err := benchBurst(ctx, client, w.GetId(), "warm burst", o.inflight)
	if err != nil {
		return nil, err
	}
	left, err := c.Server.Store().PoolSize(ctx)
	if err != nil {
		return nil, err
	}
	if left != 0 {
		fmt.Fprintf(o.progress, "bench: warning: %d presignatures left unused: some warm signatures ran the full protocol\n", left)
	}

	fmt.Fprintf(o.progress, "bench: filling a key pool of %d ...\n", o.keyPool)
	c.Server.SetPoolSizes(o.keyPool, 0)
	// Only pooled keys whose generation finished count.
	if err := waitCount(ctx, func() (int, error) { return pooledReady(ctx, c, sh.t) }, o.keyPool, 60*time.Minute); err != nil {
		return nil, fmt.Errorf("key pool: %w", err)
	}
	c.Server.SetPoolSizes(0, 0)
	var fromPool []time.Duration
	for i := range o.keyPool {
		start := time.Now()
		pw, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: fmt.Sprintf("pooled %d", i)}, wait)
		if err != nil {
			return nil, err
		}
		fromPool = append(fromPool, time.Since(start))
		if pw.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
			return nil, fmt.Errorf("wallet from the key pool is %v", pw.GetStatus())
		}
	}
	return []benchRow{
		latencyRow("sign, full stack, no presignature pool", cold),
		latencyRow("sign, full stack, warm presignature pool", warm),
		throughputRow(fmt.Sprintf("throughput, %d in flight, no pool", o.inflight), o.inflight, coldBurst),
		throughputRow(fmt.Sprintf("throughput, %d in flight, warm pool", o.inflight), o.inflight, warmBurst),
		latencyRow("wallet, full stack, key generation (no key pool)", keygen),
		latencyRow("wallet, full stack, from a warm key pool", fromPool),
	}, nil
}

// benchSigns signs n hashes one after the other and returns each latency,
// API call to signed.
func benchSigns(ctx context.Context, client *sigil.Client, walletID, label string, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		digest := sha256.Sum256(fmt.Appendf(nil, "%s %d", label, i))
		start := time.Now()
		if _, err := client.SignHash(ctx, walletID, digest[:], sigil.SignOptions{}); err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// benchBurst asks n signatures at once and returns the time until all are
// signed.
func benchBurst(ctx context.Context, client *sigil.Client, walletID, label string, n int) (time.Duration, error) {
	start := time.Now()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			digest := sha256.Sum256(fmt.Appendf(nil, "%s %d", label, i))
			_, err := client.SignHash(ctx, walletID, digest[:], sigil.SignOptions{})
			errs <- err
		}()
	}
	var all []error
	for range n {
		all = append(all, <-errs)
	}
	return time.Since(start), errors.Join(all...)
}

// pooledReady counts the key pool's finished keys.
func pooledReady(ctx context.Context, c *cluster.Cluster, t int) (int, error) {
	var n int
	err := c.Server.Store().DB().GetContext(ctx, &n, c.Server.Store().DB().Rebind(
		`SELECT COUNT(*) FROM wallets WHERE status = ? AND mpc_threshold = ?`), string(store.WalletPooled), t)
	return n, err
}

// waitCount waits until count reaches want.
func waitCount(ctx context.Context, count func() (int, error), want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := count()
		if err != nil || n >= want {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d after %s", n, want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitSignersOnline(ctx context.Context, c *cluster.Cluster, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c.Server.OnlineSigners() == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("signers did not come online within 30 s")
}
