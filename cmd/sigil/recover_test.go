package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// backupSet is the backups of one fixture wallet, as the signers store them.
type backupSet struct {
	walletID string
	pub      []byte
	files    map[string]string // signer -> path
	secrets  []string          // the shares' secret scalars, hex
}

// writeBackups encrypts every share of an n-party fixture key to the
// recipient and stores them under root as the signers would.
func writeBackups(t *testing.T, root string, n, threshold int, recipient age.Recipient) *backupSet {
	t.Helper()
	set := &backupSet{walletID: ids.New(ids.Wallet), files: map[string]string{}}
	keyID := ids.New(ids.Ceremony)
	for id, cfg := range mpctest.Configs(t, n, threshold) {
		share, err := cfg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		file, err := backup.Encrypt([]age.Recipient{recipient}, set.walletID, string(id), keyID, share, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		name := backup.Name(set.walletID, string(id))
		if err := (backup.Dir{Root: root}).Put(context.Background(), name, file); err != nil {
			t.Fatal(err)
		}
		set.files[string(id)] = filepath.Join(root, filepath.FromSlash(name))
		if set.pub, err = mpc.PublicKey(cfg); err != nil {
			t.Fatal(err)
		}
		scalar, err := cfg.ECDSA.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		set.secrets = append(set.secrets, hex.EncodeToString(scalar))
	}
	return set
}

// identityFile writes a new age identity (hybrid or X25519) and returns
// its path and recipient.
func identityFile(t *testing.T, pq bool) (string, age.Recipient) {
	t.Helper()
	var text string
	var rec age.Recipient
	if pq {
		id, err := age.GenerateHybridIdentity()
		if err != nil {
			t.Fatal(err)
		}
		text, rec = id.String(), id.Recipient()
	} else {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		text, rec = id.String(), id.Recipient()
	}
	p := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(p, []byte("# recovery key\n"+text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, rec
}

func TestRecoverPrintsPublicKeyOnly(t *testing.T) {
	for _, shape := range []struct {
		n, t int
		pq   bool
	}{{3, 2, false}, {5, 3, true}} {
		t.Run(fmt.Sprintf("%dof%d", shape.t, shape.n), func(t *testing.T) {
			identity, rec := identityFile(t, shape.pq)
			root := t.TempDir()
			set := writeBackups(t, root, shape.n, shape.t, rec)
			res := sigilCLI(t, noEnv, "recover", "--identity", identity, "--backups", root, "--json")
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			var out recovered
			if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
				t.Fatal(err)
			}
			eth, _ := address.Ethereum(set.pub)
			if out.WalletID != set.walletID || out.PublicKey != hex.EncodeToString(set.pub) || out.Addresses.Ethereum != eth ||
				out.Threshold != shape.t || len(out.Used) != shape.t || len(out.Group) != shape.n || out.PrivateKey != nil {
				t.Fatalf("output: %s", res.stdout)
			}
			if strings.Contains(res.stdout, "private_key") {
				t.Fatal("the private key was printed without --reveal-private-key")
			}
			text := sigilCLI(t, noEnv, "recover", "--identity", identity, "--backups", root)
			if text.code != 0 || !strings.Contains(text.stdout, eth) || !strings.Contains(text.stdout, "--reveal-private-key") {
				t.Fatalf("text output: %d %s %s", text.code, text.stdout, text.stderr)
			}
		})
	}
}

// TestRecoverRevealsAWorkingKey signs with the recovered key using
// go-ethereum and checks the signature with go-ethereum and OpenSSL against
// the wallet's public key; the keystore JSON decrypts to the same key.
func TestRecoverRevealsAWorkingKey(t *testing.T) {
	keystoreScrypt.N, keystoreScrypt.P = keystore.LightScryptN, keystore.LightScryptP
	identity, rec := identityFile(t, true)
	root := t.TempDir()
	set := writeBackups(t, root, 3, 2, rec)
	pass := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pass, []byte("correct horse\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := sigilCLI(t, noEnv, "recover", "--identity", identity, "--backups", set.files["signer-3"]+","+set.files["signer-1"],
		"--reveal-private-key", "--keystore-passphrase-file", pass, "--json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var out recovered
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil || out.PrivateKey == nil {
		t.Fatalf("%v: %s", err, res.stdout)
	}
	key, err := crypto.HexToECDSA(out.PrivateKey.Hex)
	if err != nil {
		t.Fatal(err)
	}
	digest := crypto.Keccak256([]byte("recovered"))
	sig, err := crypto.Sign(digest, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := ethtest.VerifyHash(set.pub, digest, sig[:32], sig[32:64]); err != nil {
		t.Fatalf("go-ethereum: %v", err)
	}
	es, err := ecsig.FromRS(sig[:32], sig[32:64], set.pub, digest)
	if err != nil {
		t.Fatal(err)
	}
	ethtest.VerifyDER(t, set.pub, digest, es.DER())

	ks, err := keystore.DecryptKey(out.PrivateKey.EthereumKeystore, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !ks.PrivateKey.Equal(key) || ks.Address.Hex() != out.Addresses.Ethereum {
		t.Fatal("the keystore holds another key")
	}
	if !strings.HasPrefix(out.PrivateKey.WIF, "K") && !strings.HasPrefix(out.PrivateKey.WIF, "L") {
		t.Fatalf("WIF %s", out.PrivateKey.WIF)
	}
}

func TestRecoverRefuses(t *testing.T) {
	identity, rec := identityFile(t, false)
	otherIdentity, _ := identityFile(t, false)
	root := t.TempDir()
	a := writeBackups(t, root, 3, 2, rec)
	b := writeBackups(t, root, 5, 3, rec)

	damaged := t.TempDir()
	for i, name := range []string{"signer-1", "signer-2"} {
		data, err := os.ReadFile(a.files[name])
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			data = data[:len(data)-30] // truncated
		} else {
			data[len(data)-10] ^= 0x40 // altered
		}
		p := filepath.Join(damaged, fmt.Sprint(i), a.walletID, name+".age")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	renamed := filepath.Join(t.TempDir(), a.walletID, "signer-3.age")
	if err := os.MkdirAll(filepath.Dir(renamed), 0o700); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(a.files["signer-1"]); err != nil || os.WriteFile(renamed, data, 0o600) != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"t-1 backups", []string{"--identity", identity, "--backups", a.files["signer-2"]},
			"not enough backups to rebuild the key: wallet " + a.walletID + " needs 2 of its 3 signers' backups"},
		{"t-1 of 3-of-5", []string{"--identity", identity, "--backups", b.files["signer-1"] + "," + b.files["signer-4"]}, "needs 3 of its 5"},
		{"wrong identity", []string{"--identity", otherIdentity, "--backups", root}, "none of the identities can decrypt it"},
		{"truncated", []string{"--identity", identity, "--backups", filepath.Join(damaged, "0")}, "damaged or was altered"},
		{"altered", []string{"--identity", identity, "--backups", filepath.Join(damaged, "1")}, "damaged or was altered"},
		{"renamed", []string{"--identity", identity, "--backups", filepath.Dir(renamed)}, "holds the share of signer signer-1"},
		{"two wallets", []string{"--identity", identity, "--backups", root}, "backups of several wallets"},
		{"two wallets' files", []string{"--identity", identity, "--backups", a.files["signer-1"] + "," + b.files["signer-2"] + "," + b.files["signer-3"]},
			"backups of several wallets"},
		{"no backups", []string{"--identity", identity, "--backups", t.TempDir()}, "no backup files"},
		{"no such wallet", []string{"--identity", identity, "--backups", root, "--wallet", ids.New(ids.Wallet)}, "no backup files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := sigilCLI(t, noEnv, append([]string{"recover", "--reveal-private-key"}, tc.args...)...)
			if res.code != 1 || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", res.code, res.stderr, tc.want)
			}
			if res.stdout != "" {
				t.Fatalf("printed %q", res.stdout)
			}
			for _, s := range append(a.secrets, b.secrets...) {
				if strings.Contains(res.stderr, s) {
					t.Fatal("a share's secret was printed")
				}
			}
		})
	}
	// Naming the wallet picks it out of a folder holding several.
	if res := sigilCLI(t, noEnv, "recover", "--identity", identity, "--backups", root, "--wallet", b.walletID); res.code != 0 {
		t.Fatalf("--wallet: %d %s", res.code, res.stderr)
	}
}

func TestBackupFlagsRefusedWhenIncomplete(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"signer", "--cert", "c", "--key", "k", "--ca", "ca", "--backup-dir", "d"}, "--backup-recipients is required"},
		{[]string{"signer", "--cert", "c", "--key", "k", "--ca", "ca", "--backup-recipients", "r"}, "needs a target"},
		{[]string{"dev", "--backup-s3-prefix", "p", "--backup-recipients", "r", "--backup-dir", "d"}, "need --backup-s3-bucket"},
	} {
		res := sigilCLI(t, noEnv, tc.args...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%v: exit %d %q; want %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
}
