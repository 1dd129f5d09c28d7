package driver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/hsm"
)

// Bench is one run of the HSM throughput benchmark, shared by `sigil bench
// hsm` and BenchmarkHSMThroughput. It measures, in one run:
//
//   - the HSM itself: hsm.Sign (C_UnwrapKey + C_Sign + C_DestroyObject, plus
//     low-S and recovery id in Go) on one token with Raw.Sessions callers at
//     once: the limit a driver can reach;
//   - the whole stack: signature requests queued through the wallet API,
//     on a wallet of the drain's own, while no driver runs, then drained
//     by the first 1, 2, ... of Drivers
//     (claim, sign, verify and record included), timed from the drivers'
//     start until the last request is signed, as a client that queued a
//     batch learns it (waitSigned);
//   - reading each result of the first one-driver drain with GetSignature,
//     afterwards: the cost a client that fetches results one by one adds.
//
// A machine's speed drifts, by a fifth within a minute on a shared host,
// so the measurements alternate: a raw segment, then each drain followed
// by another raw segment, Rounds times over; each drain is compared with
// the raw segments on either side of it, and the ratios' median is the
// figure.
//
// Everything shares the machine's cores: a second driver only helps where
// the first leaves cores idle.
type Bench struct {
	// Raw is the token of the raw measurement; RawSignatures how many
	// signatures it makes in all, over its segments.
	Raw           hsm.Config
	RawSignatures int
	// Drivers run the full-stack measurements, each on its own token with
	// the same master key and all on the same driver database. The first
	// also generates the wallet's key.
	Drivers []Config
	// StackRequests is how many signature requests each drain queues.
	StackRequests int
	// Rounds is how many times each drain is measured (default 1).
	Rounds int
	// API calls the wallet API of the coordinator the drivers poll, with a
	// token allowed to create wallets and signatures.
	API walletv1connect.WalletServiceClient
	// Submitters is how many CreateSignature calls run at once while
	// queueing (default 8).
	Submitters int
	// PageSize is how many requests each ListSignatures read watching a
	// drain asks for (default 1000, the most the API gives).
	PageSize int
	// Profile, when set, is called as the first one-driver drain starts
	// and the function it returns as it ends: a CPU profile of just that
	// phase.
	Profile func() (stop func())
}

// BenchResult holds the figures of one Bench run, in signatures per second.
type BenchResult struct {
	Sessions      int
	RawSignatures int
	StackRequests int
	Rounds        int
	// Raw is the raw rate over all its segments; RawSegments the rate of
	// each, in order: the first before any drain, then one after each.
	Raw         float64
	RawSegments []float64
	// Stack[i] is the full-stack rate with i+1 drivers over all its
	// drains; Ratios[i] holds each of those drains' rate over the raw
	// rate of the segments on either side of it.
	Stack  []float64
	Ratios [][]float64
	// RawCPU and StackCPU[i] are the CPU milliseconds this process spent
	// per signature in each measurement (coordinator, drivers, client and,
	// on SQLite, the database included; a PostgreSQL server's excluded).
	RawCPU   float64
	StackCPU []float64
	// RawMachineCPU and StackMachineCPU[i] are the same for every process
	// on the machine (a local PostgreSQL server's included), 0 where the
	// machine's CPU cannot be read.
	RawMachineCPU   float64
	StackMachineCPU []float64
	// Reads is how many GetSignature calls per second read the results of
	// the first one-driver drain, each once, after it; ReadCPU the CPU
	// milliseconds this process spent per read.
	Reads   float64
	ReadCPU float64
}

// Ratio is the median of Ratios[i]: the full stack with i+1 drivers as a
// share of raw.
func (r *BenchResult) Ratio(i int) float64 {
	if i >= len(r.Ratios) || len(r.Ratios[i]) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(r.Ratios[i]))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// Run makes the measurements: a raw segment, then for each round each
// drain followed by a raw segment.
func (b Bench) Run(ctx context.Context) (*BenchResult, error) {
	if len(b.Drivers) == 0 || b.RawSignatures <= 0 || b.StackRequests <= 0 || b.API == nil {
		return nil, errors.New("bench: need drivers, a wallet API client and positive request counts")
	}
	if b.Submitters == 0 {
		b.Submitters = 8
	}
	if b.PageSize == 0 {
		b.PageSize = 1000
	}
	b.Rounds = max(b.Rounds, 1)
	sessions := b.Raw.Sessions
	if sessions == 0 {
		sessions = hsm.DefaultSessions
	}
	res := &BenchResult{Sessions: sessions, RawSignatures: b.RawSignatures, StackRequests: b.StackRequests, Rounds: b.Rounds,
		Stack: make([]float64, len(b.Drivers)), Ratios: make([][]float64, len(b.Drivers)),
		StackCPU: make([]float64, len(b.Drivers)), StackMachineCPU: make([]float64, len(b.Drivers))}
	perSegment := max(b.RawSignatures/(b.Rounds*len(b.Drivers)+1), 1)
	res.RawSignatures = perSegment * (b.Rounds*len(b.Drivers) + 1)
	var rawCPU, rawMachine float64 // totals
	raw := func() error {
		cpu := startCPU()
		rate, err := RawSignThroughput(ctx, b.Raw, perSegment, sessions)
		if err != nil {
			return fmt.Errorf("raw PKCS#11: %w", err)
		}
		c, m := cpu.per(1)
		rawCPU, rawMachine = rawCPU+c, rawMachine+m
		res.RawSegments = append(res.RawSegments, rate)
		return nil
	}
	if err := raw(); err != nil {
		return nil, err
	}
	// Each drain queues its requests on a wallet of its own, so that
	// watching it (ListSignatures) reads its own requests only, however
	// many rounds came before.
	wallets, err := b.hsmWallets(ctx, b.Rounds*len(b.Drivers))
	if err != nil {
		return nil, err
	}
	drainTime := make([]float64, len(b.Drivers)) // seconds, per driver count, over the rounds
	for range b.Rounds {
		for n := 1; n <= len(b.Drivers); n++ {
			walletID := wallets[0]
			wallets = wallets[1:]
			rate, cpu, machine, err := b.stackThroughput(ctx, res, walletID, b.Drivers[:n])
			if err != nil {
				return nil, fmt.Errorf("full stack with %d driver(s): %w", n, err)
			}
			if err := raw(); err != nil {
				return nil, err
			}
			before, after := res.RawSegments[len(res.RawSegments)-2], res.RawSegments[len(res.RawSegments)-1]
			res.Ratios[n-1] = append(res.Ratios[n-1], rate*(1/before+1/after)/2)
			drainTime[n-1] += float64(b.StackRequests) / rate
			res.StackCPU[n-1] += cpu / float64(b.Rounds)
			res.StackMachineCPU[n-1] += machine / float64(b.Rounds)
		}
	}
	for i, t := range drainTime {
		res.Stack[i] = float64(b.Rounds*b.StackRequests) / t
	}
	var rawTime float64
	for _, rate := range res.RawSegments {
		rawTime += float64(perSegment) / rate
	}
	res.Raw = float64(res.RawSignatures) / rawTime
	total := float64(res.RawSignatures)
	res.RawCPU, res.RawMachineCPU = rawCPU/total, rawMachine/total
	return res, nil
}

// WriteTable prints the figures and their ratios to raw.
func (r *BenchResult) WriteTable(w io.Writer) error {
	var err error
	printf := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, args...)
		}
	}
	printf("HSM signing throughput (SoftHSM2, %d sessions per token and per driver)\n\n", r.Sessions)
	machine := r.RawMachineCPU > 0
	header := fmt.Sprintf("  %-44s %10s %9s %10s %12s", "measurement", "sig/s", "requests", "of raw", "CPU ms/sig")
	if machine {
		header += fmt.Sprintf(" %14s", "machine ms/sig")
	}
	printf("%s\n", header)
	row := func(name string, rate float64, n int, ratio, cpu, machineCPU float64) {
		printf("  %-44s %10.0f %9d %9.2fx %12.2f", name, rate, n, ratio, cpu)
		if machine {
			printf(" %14.2f", machineCPU)
		}
		printf("\n")
	}
	row("raw PKCS#11 unwrap+sign+destroy, 1 token", r.Raw, r.RawSignatures, 1, r.RawCPU, r.RawMachineCPU)
	if len(r.RawSegments) > 1 {
		printf("    (%d segments, one before the drains and one after each: %.0f-%.0f sig/s)\n",
			len(r.RawSegments), slices.Min(r.RawSegments), slices.Max(r.RawSegments))
	}
	for i, rate := range r.Stack {
		name := fmt.Sprintf("full stack via coordinator, %d driver", i+1)
		if i > 0 {
			name += "s"
		}
		var cpu, machineCPU float64
		if i < len(r.StackCPU) {
			cpu = r.StackCPU[i]
		}
		if i < len(r.StackMachineCPU) {
			machineCPU = r.StackMachineCPU[i]
		}
		row(name, rate, r.Rounds*r.StackRequests, r.Ratio(i), cpu, machineCPU)
		if i < len(r.Ratios) && len(r.Ratios[i]) > 1 {
			var each []string
			for _, x := range r.Ratios[i] {
				each = append(each, fmt.Sprintf("%.2fx", x))
			}
			printf("    (%d drains of %d, each against the raw segments on either side: %s; median above)\n",
				len(r.Ratios[i]), r.StackRequests, strings.Join(each, " "))
		}
	}
	if len(r.Stack) > 1 {
		printf("\n  %d drivers vs 1: %.2fx\n", len(r.Stack), r.Stack[len(r.Stack)-1]/r.Stack[0])
	}
	if len(r.StackCPU) > 0 && r.RawCPU > 0 {
		// What the stack adds to each signature, in this process: where the
		// HSM has cores of its own, this is what bounds the stack.
		printf("  full stack CPU beyond the raw figure, 1 driver: %.2f ms per signature", r.StackCPU[0]-r.RawCPU)
		if machine && len(r.StackMachineCPU) > 0 {
			printf(" in this process, %.2f ms on the machine", r.StackMachineCPU[0]-r.RawMachineCPU)
		}
		printf("\n")
	}
	if r.Reads > 0 {
		// The drains are timed with a handful of reads (a long poll on the
		// last request, then ListSignatures pages); a client that fetches
		// each result with its own call adds this to every signature.
		printf("  reading each result with GetSignature afterwards: %.0f reads/s, %.2f ms CPU per read\n", r.Reads, r.ReadCPU)
	}
	return err
}

// RawSignThroughput signs n random digests on one token with `workers`
// goroutines and returns signatures per second. Each signature unwraps the
// key into a session object, signs and destroys it, as a sign job does.
func RawSignThroughput(ctx context.Context, cfg hsm.Config, n, workers int) (float64, error) {
	h, err := hsm.Open(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		return 0, err
	}
	var left atomic.Int64
	left.Store(int64(n))
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			digest := make([]byte, 32)
			for left.Add(-1) >= 0 {
				_, _ = rand.Read(digest)
				if _, err := h.Sign(ctx, wrapped, pub, digest); err != nil {
					errs <- err
					left.Store(0)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

// hsmWallets creates n HSM wallets with the first driver running, waits
// until they are active and stops the driver.
func (b Bench) hsmWallets(ctx context.Context, n int) ([]string, error) {
	stop, err := startDrivers(ctx, b.Drivers[:1])
	if err != nil {
		return nil, err
	}
	defer func() { _ = stop() }()
	ids := make([]string, n)
	for i := range ids {
		resp, err := b.API.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{
			Name: fmt.Sprintf("bench-%d", i+1), Backend: walletv1.Backend_BACKEND_HSM,
		}))
		if err != nil {
			return nil, fmt.Errorf("create a benchmark wallet: %w", err)
		}
		ids[i] = resp.Msg.GetWallet().GetId()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for active := false; !active; {
			got, err := b.API.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: id}))
			if err != nil {
				return nil, err
			}
			switch w := got.Msg.GetWallet(); w.GetStatus() {
			case walletv1.WalletStatus_WALLET_STATUS_ACTIVE:
				active = true
				continue
			case walletv1.WalletStatus_WALLET_STATUS_FAILED:
				return nil, fmt.Errorf("benchmark wallet failed: %s", w.GetFailureReason())
			}
			if time.Now().After(deadline) {
				return nil, errors.New("benchmark wallets not active after 30 s: is the driver reaching the coordinator?")
			}
			if sleep(ctx, 20*time.Millisecond); ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	return ids, stop()
}

// stackThroughput queues StackRequests signature requests, then starts the
// drivers and times them until every request is signed.
// It returns signatures per second and the process's and the machine's
// CPU milliseconds per signature.
func (b Bench) stackThroughput(ctx context.Context, res *BenchResult, walletID string, drivers []Config) (rate, cpu, machine float64, err error) {
	ids, err := b.queueSignatures(ctx, walletID)
	if err != nil {
		return 0, 0, 0, err
	}
	procs, err := openDrivers(ctx, drivers)
	if err != nil {
		return 0, 0, 0, err
	}
	stopProfile := func() {}
	first := len(drivers) == 1 && res.Reads == 0 // the first one-driver drain
	if b.Profile != nil && first {
		stopProfile = b.Profile()
	}
	start, meter := time.Now(), startCPU()
	stop := runDrivers(ctx, procs)
	err = waitSigned(ctx, b.API, walletID, ids, b.PageSize)
	elapsed := time.Since(start)
	cpu, machine = meter.per(len(ids))
	stopProfile()
	if err := errors.Join(err, stop()); err != nil {
		return 0, 0, 0, err
	}
	if first {
		if res.Reads, res.ReadCPU, err = b.readEach(ctx, ids); err != nil {
			return 0, 0, 0, fmt.Errorf("reading each result: %w", err)
		}
	}
	return float64(len(ids)) / elapsed.Seconds(), cpu, machine, nil
}

// queueSignatures asks for StackRequests signatures of distinct random
// hashes and returns their ids.
func (b Bench) queueSignatures(ctx context.Context, walletID string) ([]string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ids := make([]string, b.StackRequests)
	next := make(chan int)
	var wg sync.WaitGroup
	for range b.Submitters {
		wg.Go(func() {
			for i := range next {
				if ctx.Err() != nil {
					continue // a call failed: let the feeder finish
				}
				hash := make([]byte, 32)
				_, _ = rand.Read(hash)
				resp, err := b.API.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
					WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hash},
				}))
				if err != nil {
					cancel(fmt.Errorf("CreateSignature: %w", err))
					continue
				}
				ids[i] = resp.Msg.GetSignature().GetId()
			}
		})
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return ids, nil
}

// waitSigned returns once every request in ids is signed, waiting as a
// client that queued a batch would: a long-polling GetSignature on the
// last request queued, then ListSignatures pages of the wallet to check
// the rest; a request still pending there is waited for the same way and
// the pages read again from the one that held it. The drain is timed with
// a handful of reads, not one per request: reading each result is measured
// apart (readEach).
func waitSigned(ctx context.Context, api walletv1connect.WalletServiceClient, walletID string, ids []string, pageSize int) error {
	const limit = 10 * time.Minute
	ctx, cancel := context.WithTimeoutCause(ctx, limit, fmt.Errorf("requests still pending after %v", limit))
	defer cancel()
	pending := make(map[string]bool, len(ids))
	for _, id := range ids {
		pending[id] = true
	}
	waitFor, from := ids[len(ids)-1], ""
	for len(pending) > 0 {
		if err := waitOne(ctx, api, waitFor); err != nil {
			if context.Cause(ctx) != nil {
				return fmt.Errorf("%d of %d signatures: %w", len(pending), len(ids), context.Cause(ctx))
			}
			return err
		}
		var err error
		if waitFor, from, err = checkPages(ctx, api, walletID, from, pageSize, pending); err != nil {
			return err
		}
	}
	return nil
}

// waitOne long-polls GetSignature until the request is no longer pending.
func waitOne(ctx context.Context, api walletv1connect.WalletServiceClient, id string) error {
	for {
		got, err := api.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: id, Wait: durationpb.New(30 * time.Second)}))
		if err != nil {
			return err
		}
		switch sg := got.Msg.GetSignature(); sg.GetStatus() {
		case walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED:
			return nil
		case walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING:
		default:
			return fmt.Errorf("signature %s %v: %s", sg.GetId(), sg.GetStatus(), sg.GetFailureReason())
		}
	}
}

// checkPages reads the wallet's requests from page token from on and
// removes the signed ones of pending. It returns a request still pending
// (if any) and the token of the page that holds the first of them.
func checkPages(ctx context.Context, api walletv1connect.WalletServiceClient, walletID, from string, pageSize int, pending map[string]bool) (waitFor, at string, err error) {
	token := from
	for {
		page, err := api.ListSignatures(ctx, connect.NewRequest(&walletv1.ListSignaturesRequest{WalletId: walletID, PageSize: int32(pageSize), PageToken: token}))
		if err != nil {
			return "", "", err
		}
		for _, sg := range page.Msg.GetSignatures() {
			if !pending[sg.GetId()] {
				continue
			}
			switch sg.GetStatus() {
			case walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED:
				delete(pending, sg.GetId())
			case walletv1.SignatureStatus_SIGNATURE_STATUS_PENDING:
				if waitFor == "" {
					at = token
				}
				waitFor = sg.GetId()
			default:
				return "", "", fmt.Errorf("signature %s %v: %s", sg.GetId(), sg.GetStatus(), sg.GetFailureReason())
			}
		}
		if token = page.Msg.GetNextPageToken(); token == "" {
			break
		}
	}
	if waitFor == "" && len(pending) > 0 {
		return "", "", fmt.Errorf("%d queued signature requests are missing from ListSignatures", len(pending))
	}
	return waitFor, at, nil
}

// readEach reads every request once with GetSignature, from Submitters
// callers at once, and returns reads per second and this process's CPU
// milliseconds per read: what a client that fetches each result on its own
// adds to the stack's cost of a signature.
func (b Bench) readEach(ctx context.Context, ids []string) (float64, float64, error) {
	start, meter := time.Now(), startCPU()
	next := make(chan string)
	errs := make(chan error, b.Submitters)
	var wg sync.WaitGroup
	for range b.Submitters {
		wg.Go(func() {
			for id := range next {
				got, err := b.API.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: id}))
				if err == nil && got.Msg.GetSignature().GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
					err = fmt.Errorf("signature %s is %v after the drain", id, got.Msg.GetSignature().GetStatus())
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, 0, err
	default:
	}
	cpu, _ := meter.per(len(ids))
	return float64(len(ids)) / time.Since(start).Seconds(), cpu, nil
}

// startDrivers opens and runs drivers until stop is called.
func startDrivers(ctx context.Context, cfgs []Config) (stop func() error, err error) {
	procs, err := openDrivers(ctx, cfgs)
	if err != nil {
		return nil, err
	}
	return runDrivers(ctx, procs), nil
}

func openDrivers(ctx context.Context, cfgs []Config) ([]*Process, error) {
	var procs []*Process
	for _, c := range cfgs {
		p, err := Open(ctx, c)
		if err != nil {
			for _, p := range procs {
				_ = p.Close()
			}
			return nil, fmt.Errorf("driver on token %q: %w", c.HSM.TokenLabel, err)
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// stopGrace is how long stopping drivers waits for the coordinator to end
// their abandoned long polls.
const stopGrace = 500 * time.Millisecond

// runDrivers runs every process; stop ends them and closes them.
func runDrivers(ctx context.Context, procs []*Process) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, len(procs))
	for _, p := range procs {
		go func() { done <- p.Run(ctx) }()
	}
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() {
			cancel()
			var errs []error
			for range procs {
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, err)
				}
			}
			for _, p := range procs {
				errs = append(errs, p.Close())
			}
			stopErr = errors.Join(errs...)
			// A long poll the drivers gave up on may still be open at the
			// coordinator until it notices the cancellation; if the next
			// measurement queued jobs before then, that poll would claim
			// one for a driver that is gone, and the job would wait a whole
			// lease. Give the coordinator time to close them.
			sleep(context.WithoutCancel(ctx), stopGrace)
		})
		return stopErr
	}
}
