package driver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
)

// childEnv, when set, makes the test binary run a driver (its value is a
// JSON childConfig) instead of the tests: the kill test needs a driver in a
// process of its own to SIGKILL.
const childEnv = "SIGIL_TEST_DRIVER_CHILD"

type childConfig struct {
	NodeURL, TLSCert, TLSKey, NodeCA, ServerName string
	Module, Token, PIN                           string
	DatabaseURL                                  string
	Concurrency                                  int
	SlowSign                                     time.Duration
}

func TestMain(m *testing.M) {
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(runChild(raw))
	}
	code := m.Run()
	_ = hsmtest.RemoveAll()
	os.Exit(code)
}

func runChild(raw string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p, err := driver.Open(ctx, driver.Config{
		NodeURL: cc.NodeURL, TLSCert: cc.TLSCert, TLSKey: cc.TLSKey, NodeCA: cc.NodeCA, ServerName: cc.ServerName,
		HSM:         hsm.Config{ModulePath: cc.Module, TokenLabel: cc.Token, PIN: cc.PIN, Sessions: cc.Concurrency},
		DatabaseURL: cc.DatabaseURL, Concurrency: cc.Concurrency, ClaimWait: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 1
	}
	defer p.Close()
	if cc.SlowSign > 0 {
		driver.SlowDown(p, cc.SlowSign)
	}
	fmt.Println("ready")
	if err := p.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "driver:", err)
		return 1
	}
	return 0
}
