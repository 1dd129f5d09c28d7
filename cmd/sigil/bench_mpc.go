package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taurusgroup/multi-party-sig/pkg/party"

	"github.com/sigil-wallet/sigil/internal/cluster"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
	"github.com/sigil-wallet/sigil/signer/mpc"
)

func benchMPCCommand() *command {
	return &command{
		name:    "bench mpc",
		summary: "measure MPC keygen and signing: full stack vs all parties in one process",
		usage: `Measures, in one run and for each --groups shape (t-of-n), CMP key generation
and signing twice: through the full stack (coordinator, relay, mTLS, n signer
nodes on loopback, the wallet API) and with every party in this process talking
over channels. Prints both latencies and their ratio. Both sides share this
machine's cores, so the ratio is the cost of the stack itself.

Key generation time is dominated by the random search for Paillier safe
primes and varies widely from run to run; signing is the steady figure.
Takes minutes: a 3-of-5 key generation alone is a minute or more on 2 cores.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var groups string
			var signs int
			fs.StringVar(&groups, "groups", "2of3,3of5", "shapes to measure, t-of-n, comma-separated")
			fs.IntVar(&signs, "signs", 3, "signatures per shape and side (the median is reported)")
			return func() error {
				shapes, err := parseShapes(groups)
				if err != nil {
					return fmt.Errorf("%w: --groups: %v", errUsage, err)
				}
				if signs < 1 {
					return fmt.Errorf("%w: --signs must be at least 1", errUsage)
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "group\tphase\tin-process\tfull stack\tratio\t")
				for _, sh := range shapes {
					fmt.Fprintf(env.stderr, "bench: %d-of-%d ...\n", sh.t, sh.n)
					r, err := benchShape(env.ctx, sh, signs, env)
					if err != nil {
						return err
					}
					for _, row := range r {
						fmt.Fprintf(tw, "%d-of-%d\t%s\t%s\t%s\t%.3f\t\n", sh.t, sh.n, row.phase, row.local.Round(time.Millisecond), row.full.Round(time.Millisecond), float64(row.full)/float64(row.local))
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

type benchRow struct {
	phase       string
	local, full time.Duration
}

func benchShape(ctx context.Context, sh shape, signs int, env *cliEnv) ([]benchRow, error) {
	ids := make([]party.ID, sh.n)
	for i := range ids {
		ids[i] = party.ID(cluster.SignerName(i + 1))
	}
	start := time.Now()
	cfgs, err := mpc.LocalKeygen(ctx, ids, sh.t)
	if err != nil {
		return nil, fmt.Errorf("in-process keygen: %w", err)
	}
	localKeygen := time.Since(start)
	var localSigns []time.Duration
	for i := range signs {
		digest := sha256.Sum256(fmt.Appendf(nil, "local %d", i))
		start := time.Now()
		if _, err := mpc.LocalSign(ctx, cfgs, ids[:sh.t], digest[:]); err != nil {
			return nil, fmt.Errorf("in-process sign: %w", err)
		}
		localSigns = append(localSigns, time.Since(start))
	}

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
	// Poll every 5 ms: negligible against ceremonies of seconds.
	fast := sigil.WaitOptions{PollInterval: 5 * time.Millisecond, MaxPollInterval: 5 * time.Millisecond, Timeout: 15 * time.Minute}
	start = time.Now()
	w, err := client.CreateWalletAndWait(ctx, sigil.CreateWalletOptions{Name: "bench"}, fast)
	if err != nil {
		return nil, err
	}
	fullKeygen := time.Since(start)
	var fullSigns []time.Duration
	for i := range signs {
		digest := sha256.Sum256(fmt.Appendf(nil, "full %d", i))
		start := time.Now()
		if _, err := client.SignHash(ctx, w.GetId(), digest[:], sigil.SignOptions{Wait: sigil.SignatureWaitOptions{
			PollInterval: fast.PollInterval, MaxPollInterval: fast.MaxPollInterval}}); err != nil {
			return nil, err
		}
		fullSigns = append(fullSigns, time.Since(start))
	}
	return []benchRow{
		{"keygen", localKeygen, fullKeygen},
		{"sign (median)", median(localSigns), median(fullSigns)},
	}, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
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
