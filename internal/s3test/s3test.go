// Package s3test runs a real S3 server for tests: versitygw
// (github.com/versity/versitygw), an S3 gateway over a local folder, built
// from the Go module proxy once per machine and cached, and started per
// test over a temporary folder.
//
// Without the Go toolchain or the module proxy the tests that need it skip
// with a message, except under CI=true, where they fail.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the versitygw release the tests run.
const Version = "v1.8.0"

// Credentials of the server's root account.
const (
	AccessKey = "sigil-test-access"
	SecretKey = "sigil-test-secret-key" //nolint:gosec // a throwaway test server's root account
	Region    = "us-east-1"
)

var (
	buildOnce sync.Once
	binPath   string
	errBuild  error
)

// binary returns the versitygw binary, building it on first use into the
// user cache (keyed by version), so it is built once per machine, not once
// per test or package.
func binary() (string, error) {
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "sigil-test", "versitygw-"+Version)
		binPath = filepath.Join(dir, "versitygw")
		if _, err := os.Stat(binPath); err == nil {
			return
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			errBuild = err
			return
		}
		// Build into a folder of our own and rename into place, so test
		// processes building at once never see half a binary.
		tmp, err := os.MkdirTemp(dir, ".build-")
		if err != nil {
			errBuild = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+Version)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-buildvcs=false", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			errBuild = fmt.Errorf("go install versitygw@%s: %w\n%s", Version, err, out)
			return
		}
		errBuild = os.Rename(filepath.Join(tmp, "versitygw"), binPath)
	})
	return binPath, errBuild
}

// Server is a running versitygw.
type Server struct {
	// Endpoint is its URL, e.g. http://127.0.0.1:40123.
	Endpoint string
	// Root is the folder it serves: <Root>/<bucket>/<key> are the objects.
	Root   string
	addr   string
	binary string
	t      testing.TB
	cmd    *exec.Cmd
	done   chan struct{}
}

// Start runs a server over a fresh temporary folder holding the given
// buckets, and stops it when the test ends.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("s3test: versitygw is needed under CI: %v", err)
		}
		t.Skipf("s3test: versitygw unavailable (needs the Go module proxy): %v", err)
	}
	root := t.TempDir()
	for _, b := range buckets {
		if err := os.Mkdir(filepath.Join(root, b), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := &Server{Endpoint: "http://" + addr, Root: root, addr: addr, t: t}
	s.binary = bin
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (its folder stays), as an outage would.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts a stopped server again on the same address and folder,
// and waits until it accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.binary, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", s.addr, "--quiet", "posix", "--nometa", s.Root)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("s3test: start versitygw: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := waitListening(s.addr, s.done); err != nil {
		s.t.Fatalf("s3test: versitygw did not start: %v\n%s", err, out.String())
	}
}

func waitListening(addr string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-exited:
			return errors.New("it exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// SetCredentials points the AWS SDK's default credential chain at the
// server's root account for the rest of the test (not parallel-safe, as
// t.Setenv).
func SetCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}
