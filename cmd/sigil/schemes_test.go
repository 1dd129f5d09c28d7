package main

import (
	"strings"
	"testing"

	"github.com/sigil-wallet/sigil/internal/sigiltest"
)

// TestSchemeCommands: --scheme, --parent/--path and --raw-message are
// checked before any call, and a scheme the HSM backend cannot hold comes
// back as the server's Unimplemented naming scheme, backend and limit.
func TestSchemeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a coordinator")
	}
	env := sigiltest.Start(t, sigiltest.Options{NoDriver: true})
	vars := envOf(map[string]string{"SIGIL_API_URL": env.APIURL, "SIGIL_TOKEN": env.Token})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"wallet", "create", "--backend", "hsm", "--scheme", "ed25519"}, "KEY_SCHEME_ED25519 on backend BACKEND_HSM"},
		{[]string{"wallet", "create", "--backend", "hsm", "--scheme", "schnorr"}, "(code unimplemented)"},
		{[]string{"wallet", "create", "--scheme", "rsa"}, "--scheme \"rsa\""},
		{[]string{"wallet", "create", "--parent", "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa"}, "--parent and --path go together"},
		{[]string{"wallet", "create", "--parent", "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", "--path", "m/0'"}, "derivation_path"},
		{[]string{"sign", "--wallet", "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", "--message", "a", "--raw-message", "00"}, "exactly one of --hash, --message and --raw-message"},
		{[]string{"sign", "--wallet", "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa", "--raw-message", "zz"}, "--raw-message: want hex"},
	} {
		r := sigilCLI(t, vars, tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
