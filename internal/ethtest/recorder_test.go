package ethtest_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// recorder is a testing.TB that records failures and skips instead of
// acting on them, so tests can assert that a helper fails. Everything else
// (TempDir, Context, Cleanup, Helper) goes to the real test.
type recorder struct {
	testing.TB
	failed, skipped bool
	msgs            []string
}

func (r *recorder) Fail()                     { r.failed = true }
func (r *recorder) FailNow()                  { r.failed = true; runtime.Goexit() }
func (r *recorder) Error(args ...any)         { r.log(args...); r.Fail() }
func (r *recorder) Errorf(f string, a ...any) { r.logf(f, a...); r.Fail() }
func (r *recorder) Fatal(args ...any)         { r.log(args...); r.FailNow() }
func (r *recorder) Fatalf(f string, a ...any) { r.logf(f, a...); r.FailNow() }
func (r *recorder) SkipNow()                  { r.skipped = true; runtime.Goexit() }
func (r *recorder) Skip(args ...any)          { r.log(args...); r.SkipNow() }
func (r *recorder) Skipf(f string, a ...any)  { r.logf(f, a...); r.SkipNow() }
func (r *recorder) Failed() bool              { return r.failed }
func (r *recorder) Skipped() bool             { return r.skipped }
func (r *recorder) log(args ...any)           { r.msgs = append(r.msgs, fmt.Sprint(args...)) }
func (r *recorder) logf(f string, a ...any)   { r.msgs = append(r.msgs, fmt.Sprintf(f, a...)) }

// runRecorded runs fn on its own goroutine because FailNow and SkipNow end
// the calling goroutine, exactly as the real ones do.
func runRecorded(t *testing.T, fn func(testing.TB)) *recorder {
	t.Helper()
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	for _, m := range rec.msgs {
		t.Log("recorded:", m)
	}
	return rec
}

// requireOpenSSL skips tests that need openssl to show a failure, with the
// same CI rule as VerifyDER itself.
func requireOpenSSL(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required under CI=true: %v", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
}
