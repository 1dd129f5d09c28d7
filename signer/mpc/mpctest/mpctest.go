// Package mpctest provides CMP key shares for tests, so that tests sign with
// real multi-party keys without paying for a keygen (about 30 s for 2-of-3 on
// a small machine) on every run.
//
// Shares live in testdata/cmp-<t>of<n>/signer-<i>.bin (cmp.Config
// MarshalBinary). They are test keys only, produced by this repository's own
// mpc.Runner.Keygen: when a set is missing, or SIGIL_UPDATE_FIXTURES=1, it is
// generated and written back, and the test log says so.
package mpctest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	"github.com/sigil-wallet/sigil/signer/mpc"
)

// UpdateEnv is the environment variable that forces regeneration.
const UpdateEnv = "SIGIL_UPDATE_FIXTURES"

// keygenTimeout bounds fixture generation; a 3-of-5 keygen takes a minute or
// two on two cores, so this only catches a hang.
const keygenTimeout = 15 * time.Minute

// IDs returns the party IDs of an n-party fixture: "signer-1" .. "signer-n".
func IDs(n int) []party.ID {
	ids := make([]party.ID, n)
	for i := range ids {
		ids[i] = party.ID(fmt.Sprintf("signer-%d", i+1))
	}
	return ids
}

// Configs returns the shares of a threshold-of-n test key (Sigil's t: any
// threshold parties can sign), keyed by party ID. It fails the test if the
// fixture cannot be loaded or generated.
func Configs(t testing.TB, n, threshold int) map[party.ID]*cmp.Config {
	t.Helper()
	dir, err := fixtureDir(n, threshold)
	if err != nil {
		t.Fatalf("mpctest: %v", err)
	}
	if os.Getenv(UpdateEnv) != "1" {
		cfgs, err := load(dir, n, threshold)
		if err == nil {
			return cfgs
		}
		if !os.IsNotExist(err) {
			t.Fatalf("mpctest: fixture %s is unusable (regenerate with %s=1): %v", dir, UpdateEnv, err)
		}
	}
	t.Logf("mpctest: generating %d-of-%d CMP fixture in %s (this takes a while)", threshold, n, dir)
	cfgs, err := Generate(context.Background(), n, threshold)
	if err != nil {
		t.Fatalf("mpctest: keygen: %v", err)
	}
	if err := write(dir, cfgs); err != nil {
		t.Fatalf("mpctest: write fixture: %v", err)
	}
	return cfgs
}

// Generate runs a fresh in-process keygen for n parties over a ChanNetwork.
func Generate(ctx context.Context, n, threshold int) (map[party.ID]*cmp.Config, error) {
	ctx, cancel := context.WithTimeout(ctx, keygenTimeout)
	defer cancel()
	return mpc.LocalKeygen(ctx, IDs(n), threshold)
}

func fixtureDir(n, threshold int) (string, error) {
	if threshold < 1 || threshold > n {
		return "", fmt.Errorf("bad fixture shape %d-of-%d", threshold, n)
	}
	// Tests run with their own package as working directory, so locate the
	// testdata next to this source file instead.
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate mpctest source directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata", fmt.Sprintf("cmp-%dof%d", threshold, n)), nil
}

func fileName(id party.ID) string { return string(id) + ".bin" }

func load(dir string, n, threshold int) (map[party.ID]*cmp.Config, error) {
	cfgs := make(map[party.ID]*cmp.Config, n)
	var pub []byte
	for _, id := range IDs(n) {
		b, err := os.ReadFile(filepath.Join(dir, fileName(id)))
		if err != nil {
			return nil, err
		}
		cfg := cmp.EmptyConfig(curve.Secp256k1{})
		if err := cfg.UnmarshalBinary(b); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if cfg.ID != id || cfg.Threshold != threshold-1 || len(cfg.Public) != n {
			return nil, fmt.Errorf("%s: fixture holds party %q, threshold %d, %d parties", id, cfg.ID, cfg.Threshold+1, len(cfg.Public))
		}
		p, err := mpc.PublicKey(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		if pub != nil && string(p) != string(pub) {
			return nil, fmt.Errorf("%s: shares belong to different keys", id)
		}
		pub = p
		cfgs[id] = cfg
	}
	return cfgs, nil
}

// write replaces the fixture directory as a whole, so a reader never sees
// shares of two different keygens mixed.
func write(dir string, cfgs map[party.ID]*cmp.Config) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for id, cfg := range cfgs {
		b, err := cfg.MarshalBinary()
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, fileName(id)), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}
