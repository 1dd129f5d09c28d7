package hsm_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/hsmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = hsmtest.RemoveAll()
	os.Exit(code)
}

// newConfig initialises a fresh token and returns a config for it.
func newConfig(t testing.TB, label string) hsm.Config {
	t.Helper()
	module, _, pin := hsmtest.NewToken(t, label)
	return hsm.Config{ModulePath: module, TokenLabel: label, PIN: pin}
}

// openToken opens cfg's token without requiring a master key.
func openToken(t testing.TB, cfg hsm.Config) *hsm.HSM {
	t.Helper()
	h, err := hsm.OpenToken(testContext(t), cfg)
	if err != nil {
		t.Fatalf("OpenToken: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// newHSM returns a handle on a fresh token with a generated master key.
func newHSM(t testing.TB, label string, sessions int) *hsm.HSM {
	t.Helper()
	cfg := newConfig(t, label)
	cfg.Sessions = sessions
	h := openToken(t, cfg)
	if err := h.InitMasterKey(testContext(t)); err != nil {
		t.Fatalf("InitMasterKey: %v", err)
	}
	return h
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
