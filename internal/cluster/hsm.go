package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/sigil-wallet/sigil/hsm"
	"github.com/sigil-wallet/sigil/hsm/driver"
	"github.com/sigil-wallet/sigil/internal/attest"
	"github.com/sigil-wallet/sigil/server"
)

// SoftHSMModule is where Debian's softhsm2 package installs the module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// HSMOptions add an HSM driver to the cluster.
type HSMOptions struct {
	// ModulePath is the PKCS#11 module. For SoftHSM2 the cluster makes a
	// token of its own in Dir/softhsm; for any other module give
	// TokenLabel and PIN of a token that exists.
	ModulePath string
	TokenLabel string
	PIN        string
}

// SoftHSMAvailable reports whether SoftHSM2 and its tools are installed.
func SoftHSMAvailable() bool {
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return false
	}
	_, err := exec.LookPath("softhsm2-util")
	return err == nil
}

func isSoftHSM(module string) bool { return strings.Contains(filepath.Base(module), "softhsm") }

// prepareHSM readies the token before the coordinator starts (SoftHSM:
// created on first start), gives it a master key and an attestation key,
// and pins the attestation key in cfg, as an operator does with `sigil hsm
// init-master-key`, `init-attestation-key` and --hsm-attestation-key.
func (c *Cluster) prepareHSM(ctx context.Context, cfg *server.Config) error {
	o := *c.opts.HSM
	if isSoftHSM(o.ModulePath) && o.TokenLabel == "" {
		label, pin, err := ensureSoftHSMToken(ctx, filepath.Join(c.opts.Dir, "softhsm"))
		if err != nil {
			return err
		}
		o.TokenLabel, o.PIN = label, pin
	}
	c.hsmConfig = hsm.Config{ModulePath: o.ModulePath, TokenLabel: o.TokenLabel, PIN: o.PIN}
	if err := ensureMasterKey(ctx, c.hsmConfig); err != nil {
		return err
	}
	pemPath := filepath.Join(c.opts.Dir, "hsm-attestation-key.pem")
	if err := EnsureAttestationKeys(ctx, pemPath, c.hsmConfig); err != nil {
		return err
	}
	cfg.HSMAttestationKeys = append(cfg.HSMAttestationKeys, pemPath)
	return nil
}

// startDriver runs one HSM driver on the prepared token against the
// coordinator.
func (c *Cluster) startDriver(ctx context.Context) error {
	paths := c.PKI.Nodes["driver-1"]
	p, err := driver.Open(ctx, driver.Config{
		NodeURL: "https://" + c.Server.Addr("node"), TLSCert: paths.CertPath, TLSKey: paths.KeyPath, NodeCA: c.PKI.CAPath,
		ServerName: "localhost", HSM: c.hsmConfig, DataDir: filepath.Join(c.opts.Dir, "hsm-driver"), Policy: c.opts.Policy,
		Logger: c.opts.Logger.With("component", "hsm-driver"),
	})
	if err != nil {
		return fmt.Errorf("HSM driver: %w", err)
	}
	c.driver = p
	driverCtx, stop := context.WithCancel(c.ctx)
	c.stopDriver = stop
	c.serveWG.Add(1)
	go func() {
		defer c.serveWG.Done()
		if err := p.Run(driverCtx); err != nil && driverCtx.Err() == nil {
			c.opts.Logger.Error("HSM driver stopped", "error", err)
		}
	}()
	return nil
}

// UseSoftHSMDir points SOFTHSM2_CONF at a configuration whose tokens live
// in dir. SOFTHSM2_CONF is process-wide and read when the module loads: one
// SoftHSM directory per process, chosen before any token is opened.
func UseSoftHSMDir(dir string) error {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	return os.Setenv("SOFTHSM2_CONF", conf)
}

// InitSoftHSMToken creates a token with a random user PIN in the directory
// UseSoftHSMDir chose, and returns the PIN.
func InitSoftHSMToken(ctx context.Context, label string) (string, error) {
	var raw [18]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	pin, soPIN := hex.EncodeToString(raw[:12]), hex.EncodeToString(raw[12:])
	out, err := exec.CommandContext(ctx, "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("softhsm2-util --init-token %s: %w: %s", label, err, strings.TrimSpace(string(out)))
	}
	return pin, nil
}

// ensureSoftHSMToken makes (once) the dev token in dir, keeping its PIN in
// dir/pin for restarts.
func ensureSoftHSMToken(ctx context.Context, dir string) (label, pin string, err error) {
	const tokenLabel = "sigil-dev"
	if err := UseSoftHSMDir(dir); err != nil {
		return "", "", err
	}
	pinPath := filepath.Join(dir, "pin")
	if b, err := os.ReadFile(pinPath); err == nil {
		return tokenLabel, strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	if pin, err = InitSoftHSMToken(ctx, tokenLabel); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pinPath, []byte(pin+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return tokenLabel, pin, nil
}

// ensureMasterKey creates the token's master key when it has none.
func ensureMasterKey(ctx context.Context, hc hsm.Config) error {
	h, err := hsm.OpenToken(ctx, hc)
	if err != nil {
		return err
	}
	defer h.Close()
	if h.HasMasterKey() {
		return nil
	}
	return h.InitMasterKey(ctx)
}

// EnsureAttestationKeys gives each token an attestation key (unless it has
// one) and writes all their public keys to path as one PEM file, the
// coordinator's --hsm-attestation-key.
func EnsureAttestationKeys(ctx context.Context, path string, tokens ...hsm.Config) error {
	var out []byte
	for _, hc := range tokens {
		pemKey, err := ensureAttestationKey(ctx, hc)
		if err != nil {
			return fmt.Errorf("attestation key of token %q: %w", hc.TokenLabel, err)
		}
		out = append(out, pemKey...)
	}
	return os.WriteFile(path, out, 0o600)
}

func ensureAttestationKey(ctx context.Context, hc hsm.Config) ([]byte, error) {
	h, err := hsm.OpenToken(ctx, hc)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	pub, err := h.AttestationKey(ctx)
	if errors.Is(err, hsm.ErrNoAttestationKey) {
		if err = h.InitAttestationKey(ctx); err == nil {
			pub, err = h.AttestationKey(ctx)
		}
	}
	if err != nil {
		return nil, err
	}
	return attest.EncodePEM(pub)
}

// SoftHSMTokens initialises one SoftHSM2 token per label in dir and
// gives them all the same new master key, as `sigil hsm import-master-key`
// does across a deployment. SOFTHSM2_CONF is process-wide and read when the
// module loads, so this runs before any token is opened.
func SoftHSMTokens(ctx context.Context, dir string, sessions int, labels ...string) ([]hsm.Config, error) {
	if err := UseSoftHSMDir(dir); err != nil {
		return nil, err
	}
	var cfgs []hsm.Config
	for _, label := range labels {
		pin, err := InitSoftHSMToken(ctx, label)
		if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, hsm.Config{ModulePath: SoftHSMModule, TokenLabel: label, PIN: pin, Sessions: sessions})
	}
	material, err := hsm.GenerateMasterKeyMaterial()
	if err != nil {
		return nil, err
	}
	defer clear(material)
	var handles []*hsm.HSM
	defer func() {
		for _, h := range handles {
			_ = h.Close()
		}
	}()
	for _, c := range cfgs {
		h, err := hsm.OpenToken(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("token %s: %w", c.TokenLabel, err)
		}
		handles = append(handles, h)
		if err := h.ImportMasterKey(ctx, bytes.Clone(material)); err != nil {
			return nil, fmt.Errorf("import the master key into %s: %w", c.TokenLabel, err)
		}
	}
	return cfgs, nil
}
