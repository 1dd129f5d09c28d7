package hsm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/hsm"
)

func TestOpenErrors(t *testing.T) {
	cfg := newConfig(t, "startup")
	notPKCS11 := filepath.Join(t.TempDir(), "not-a-module.so")
	if err := os.WriteFile(notPKCS11, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*hsm.Config)) hsm.Config {
		c := cfg
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     hsm.Config
		want    error
		mention string // the message must help the operator
	}{
		{"missing module", with(func(c *hsm.Config) { c.ModulePath = "/nonexistent/libpkcs11.so" }), hsm.ErrModule, "/nonexistent/libpkcs11.so"},
		{"not a library", with(func(c *hsm.Config) { c.ModulePath = notPKCS11 }), hsm.ErrModule, "not a loadable PKCS#11 library"},
		{"unknown token", with(func(c *hsm.Config) { c.TokenLabel = "nope" }), hsm.ErrTokenNotFound, `"startup"`},
		{"wrong PIN", with(func(c *hsm.Config) { c.PIN = "wrong-pin-1234" }), hsm.ErrPIN, "PIN"},
		{"no master key", cfg, hsm.ErrNoMasterKey, "sigil hsm init-master-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := hsm.Open(testContext(t), tt.cfg)
			if err == nil {
				_ = h.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if strings.Contains(err.Error(), cfg.PIN) || strings.Contains(err.Error(), "wrong-pin-1234") {
				t.Errorf("error %q contains the PIN", err)
			}
		})
	}
}

// A token that another handle of the process has logged in accepts any PIN
// at C_Login (CKR_USER_ALREADY_LOGGED_IN); a wrong PIN must still fail.
func TestWrongPINWhileLoggedIn(t *testing.T) {
	cfg := newConfig(t, "pin-shared")
	_ = openToken(t, cfg)
	bad := cfg
	bad.PIN = "0000"
	if h, err := hsm.OpenToken(testContext(t), bad); !errors.Is(err, hsm.ErrPIN) {
		if h != nil {
			_ = h.Close()
		}
		t.Fatalf("OpenToken with wrong PIN while logged in: %v, want ErrPIN", err)
	}
	// The right PIN joins the existing login.
	_ = openToken(t, cfg)
}

func TestOpenTokenWithoutMasterKey(t *testing.T) {
	cfg := newConfig(t, "nomk")
	h := openToken(t, cfg)
	if h.HasMasterKey() {
		t.Fatal("fresh token reports a master key")
	}
	ctx := testContext(t)
	if _, _, err := h.GenerateKey(ctx); !errors.Is(err, hsm.ErrNoMasterKey) {
		t.Fatalf("GenerateKey without master key: %v", err)
	}
	if _, err := h.Sign(ctx, make([]byte, 40), make([]byte, 33), make([]byte, 32)); !errors.Is(err, hsm.ErrInvalidInput) {
		t.Fatalf("Sign with bad pub: %v", err)
	}
	if err := h.InitMasterKey(ctx); err != nil {
		t.Fatal(err)
	}
	// The handle is usable at once, and Open now succeeds.
	if _, _, err := h.GenerateKey(ctx); err != nil {
		t.Fatal(err)
	}
	h2, err := hsm.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after init: %v", err)
	}
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := hsm.Config{Sessions: -1}.Validate()
	for _, want := range []string{"module path", "token label", "PIN", "sessions"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want mention of %q", err, want)
		}
	}
}

func TestClosedHandle(t *testing.T) {
	cfg := newConfig(t, "closed")
	h, err := hsm.OpenToken(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.InitMasterKey(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := h.GenerateKey(testContext(t)); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("GenerateKey after Close: %v", err)
	}
}
