// Package proctest runs Sigil as real OS processes for fault tests: it
// builds the `sigil` binary once per test binary, starts `sigil server`
// replicas, `sigil signer`s and `sigil hsm-driver`s on loopback with a dev
// PKI, waits until each is ready by its health or metrics endpoint, and
// kills (SIGKILL) or freezes (SIGSTOP) them. Nothing is simulated: what a
// test kills is a process the kernel ends, with its connections.
//
// Tests using it are skipped under -short; each process's output goes to a
// log file in the test's folder, whose tail is printed when a test fails.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/pki"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds `sigil` once for this test binary and returns its path.
// Tests are skipped under -short.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("proctest: real-process tests are skipped under -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sigil-proctest-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "sigil")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", buildPath, "github.com/sigil-wallet/sigil/cmd/sigil").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build sigil: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Harness is one test's deployment of processes.
type Harness struct {
	t   testing.TB
	Dir string
	PKI *pki.DevPKI
	bin string

	mu    sync.Mutex
	procs []*Proc
}

// New makes a dev PKI for the named signers and drivers in a temporary
// folder. Every process still running when the test ends is killed.
func New(t testing.TB, signers, drivers []string) *Harness {
	t.Helper()
	h := &Harness{t: t, Dir: t.TempDir(), bin: Binary(t)}
	p, err := pki.EnsureDevPKI(filepath.Join(h.Dir, "pki"), signers, drivers)
	if err != nil {
		t.Fatal(err)
	}
	h.PKI = p
	t.Cleanup(h.cleanup)
	return h
}

func (h *Harness) cleanup() {
	h.mu.Lock()
	procs := h.procs
	h.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if h.t.Failed() {
		for _, p := range procs {
			h.t.Logf("---- last lines of %s (%s) ----\n%s", p.Name, p.LogPath, tail(p.LogPath, 40))
		}
	}
}

// Proc is one process of the deployment.
type Proc struct {
	Name    string
	LogPath string
	h       *Harness
	args    []string
	env     []string
	ready   func(context.Context) error

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs `sigil args...` as name, with extra environment, and waits
// until ready (nil: not at all) says it is serving.
func (h *Harness) Start(name string, env []string, ready func(context.Context) error, args ...string) *Proc {
	h.t.Helper()
	p := h.Launch(name, env, ready, args...)
	if ready != nil {
		p.WaitReady()
	}
	return p
}

// Launch runs `sigil args...` as name like Start, without waiting: start
// several at once, then WaitReady on each. Restart waits as Start does.
func (h *Harness) Launch(name string, env []string, ready func(context.Context) error, args ...string) *Proc {
	h.t.Helper()
	p := &Proc{Name: name, LogPath: filepath.Join(h.Dir, "logs", name+".log"), h: h, args: args, env: env, ready: ready}
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o700); err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	p.launch()
	return p
}

// Restart starts the process again with the same arguments (after Kill)
// and waits until it is ready.
func (p *Proc) Restart() {
	p.h.t.Helper()
	p.launch()
	if p.ready != nil {
		p.WaitReady()
	}
}

// launch starts the process without waiting for it.
func (p *Proc) launch() {
	t := p.h.t
	t.Helper()
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.h.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// WaitReady waits until the process passes its readiness check (up to 60
// s), failing the test if it exits or does not get ready.
func (p *Proc) WaitReady() {
	t := p.h.t
	t.Helper()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := p.ready(ctx)
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited before it was ready:\n%s", p.Name, tail(p.LogPath, 30))
		case <-ctx.Done():
			t.Fatalf("%s not ready after 60s: %v\n%s", p.Name, err, tail(p.LogPath, 30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Kill ends the process with SIGKILL and waits until it is gone. It is a
// no-op on a process that is not running.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies as well
	_ = cmd.Process.Kill()
	<-done
}

// Stop freezes the process (SIGSTOP); Continue resumes it.
func (p *Proc) Stop() { p.signal(syscall.SIGSTOP) }

// Continue resumes a stopped process.
func (p *Proc) Continue() { p.signal(syscall.SIGCONT) }

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		if err := p.cmd.Process.Signal(sig); err != nil {
			p.h.t.Errorf("signal %v to %s: %v", sig, p.Name, err)
		}
	}
}

// Running reports whether the process is running (stopped counts).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// FreeAddr returns a loopback address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// HTTPReady is a readiness check: GET url answers 200.
func HTTPReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// HealthReady is a readiness check on an API port's gRPC health service
// (over the Connect protocol): ready when it says SERVING.
func HealthReady(apiURL string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("SERVING")) || bytes.Contains(body, []byte("NOT_SERVING")) {
			return fmt.Errorf("health: %s %s", resp.Status, body)
		}
		return nil
	}
}

// Metric sums the samples of a Prometheus metric at url (/metrics) whose
// labels contain every one of labels ("name=\"value\"").
func Metric(ctx context.Context, url, name string, labels ...string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(rest, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// Eventually polls cond every 50 ms until it holds, failing the test after
// timeout with what it was waiting for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s (last error: %v)", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond) //nolint:forbidigo // the poll interval of a bounded wait for a condition
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "(no output)"
	}
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
