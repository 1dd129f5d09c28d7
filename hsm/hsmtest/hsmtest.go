// Package hsmtest creates SoftHSM2 tokens for tests that exercise the hsm
// package against a real PKCS#11 module.
//
// SOFTHSM2_CONF is read by the module at C_Initialize and is process-global,
// so tokens cannot each have their own config file while one process uses
// several of them. Instead every token made by NewToken lives in one tokendir
// shared by the whole test binary, under one config; tokens differ by label
// (use a distinct label per token and per test). The directory is created on
// first use in os.TempDir, not t.TempDir, because it outlives the test that
// created it; each token is deleted when its test ends, and a TestMain may
// call RemoveAll to delete the directory itself.
//
// SoftHSM reads its token list when the module is initialised, and the hsm
// package finalises the module when the last handle closes. A token is
// therefore visible to handles opened after NewToken returns, provided no
// handle was left open from before.
package hsmtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ModulePath is where Debian's softhsm2 package installs the module.
const ModulePath = "/usr/lib/softhsm/libsofthsm2.so"

var shared struct {
	sync.Mutex
	dir, conf string
}

// NewToken initialises a SoftHSM2 token labelled label and returns the module
// path, the config file (SOFTHSM2_CONF is set to it) and the user PIN. It
// skips the test when SoftHSM2 is not installed, unless CI=true, where a
// missing HSM must fail the build rather than silently skip its tests.
func NewToken(t testing.TB, label string) (modulePath, conf, pin string) {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err == nil {
		_, err = os.Stat(ModulePath)
	}
	if err != nil {
		msg := "SoftHSM2 not available (" + err.Error() + "); install it with `apt-get install softhsm2`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	conf = config(t)
	pin, soPIN := randomPIN(), randomPIN()
	run(t, util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN)
	t.Cleanup(func() {
		// Best effort: a handle the test leaked may still hold the token.
		_ = exec.Command(util, "--delete-token", "--token", label).Run()
	})
	return ModulePath, conf, pin
}

// RemoveAll deletes the shared token directory. Call it from TestMain after
// m.Run; tokens are unusable afterwards.
func RemoveAll() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.dir == "" {
		return nil
	}
	err := os.RemoveAll(shared.dir)
	shared.dir, shared.conf = "", ""
	return err
}

// config creates the shared config once and points SOFTHSM2_CONF at it.
// os.Setenv rather than t.Setenv: t.Setenv would restore the variable when
// the first test ends, hiding the tokens of every later test.
func config(t testing.TB) string {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.conf == "" {
		dir, err := os.MkdirTemp("", "sigil-softhsm-")
		if err != nil {
			t.Fatal(err)
		}
		tokens := filepath.Join(dir, "tokens")
		if err := os.Mkdir(tokens, 0o700); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "softhsm2.conf")
		body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\n"
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		shared.dir, shared.conf = dir, conf
	}
	if err := os.Setenv("SOFTHSM2_CONF", shared.conf); err != nil {
		t.Fatal(err)
	}
	return shared.conf
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		// args hold PINs; a test token's PIN is not a secret, but keep the
		// habit of not printing PINs.
		t.Fatalf("%s %s: %v\n%s", name, args[0], err, strings.TrimSpace(string(out)))
	}
}

func randomPIN() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
