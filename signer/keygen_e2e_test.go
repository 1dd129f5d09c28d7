package signer_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"filippo.io/age"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/math/polynomial"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
	"github.com/taurusgroup/multi-party-sig/protocols/cmp"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/kek"
)

// TestKeygenSignAndNoKeyMaterialInClear is the one full key generation of
// the suite: 2-of-3 CMP through the coordinator, relay and mTLS, then an
// EIP-191 signature recovering the wallet's address. Afterwards it opens
// every share with its signer's KEK, reconstructs the whole private key,
// and searches every database file (coordinator and signers, WAL included,
// freed pages included) and every sealed message the relay held for any
// secret: none may appear in clear.
func TestKeygenSignAndNoKeyMaterialInClear(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a full CMP key generation (about 30 s); skipped with -short")
	}
	// Shares are backed up too: the backups of a real key generation are
	// searched with the rest, and rebuild the wallet's key.
	recipients, identity := recoveryKeys(t, true)
	backupDir := t.TempDir()
	tc := startClusterOpts(t, cluster.Options{Signers: 3, Threshold: 2, Backup: backup.Config{RecipientsFile: recipients, Dir: backupDir}})
	ctx := context.Background()

	// Capture what the relay stores while the ceremony runs (it deletes
	// messages when a ceremony ends).
	var (
		mu      sync.Mutex
		relayed [][]byte
		seen    = map[int64]bool{}
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			open, err := tc.Server.Store().OpenCeremonies(ctx)
			if err != nil {
				continue
			}
			for _, c := range open {
				for _, p := range c.Parties {
					box, _ := tc.Server.Store().Mailbox(ctx, c.ID, p, 0, 1000)
					mu.Lock()
					for _, m := range box {
						if !seen[m.Pos] {
							seen[m.Pos] = true
							relayed = append(relayed, m.Sealed)
						}
					}
					mu.Unlock()
				}
			}
		}
	}()

	res, err := tc.client.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{Name: "full keygen"}))
	if err != nil {
		t.Fatal(err)
	}
	w := tc.waitWallet(t, res.Msg.GetWallet().GetId(), 4*time.Minute)
	close(stop)
	<-done
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("wallet %v: %s", w.GetStatus(), w.GetFailureReason())
	}
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Message{Message: "sigil keygen e2e"}}, 2*time.Minute)
	verifySignature(t, w.GetPublicKey(), s)
	// The key generation reported the chain key the signers agreed on, from
	// which BIP-32 child wallets derive.
	stored, err := tc.Server.Store().GetWallet(ctx, w.GetId())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.ChainCode) != 32 {
		t.Fatalf("the key generation left chain code %x, want 32 bytes", stored.ChainCode)
	}

	if n, _ := tc.Server.Store().CountRelayMessages(ctx, ""); n != 0 {
		t.Errorf("the relay still holds %d messages after its ceremonies ended", n)
	}
	mu.Lock()
	if len(relayed) < 6 {
		t.Fatalf("captured only %d relayed messages; the capture is not working", len(relayed))
	}
	mu.Unlock()

	tc.waitBackup(t, w.GetId(), walletv1.BackupState_BACKUP_STATE_COMPLETE)
	backups, err := backup.Read(ctx, []backup.Location{{Store: backup.Dir{Root: backupDir}, Where: backupDir}}, []age.Identity{identity}, w.GetId())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := backup.Recover(backups)
	if err != nil || !bytes.Equal(rec.PublicKey, w.GetPublicKey()) {
		t.Fatalf("recover from the backups: %v", err)
	}
	rec.Key.Zero()

	secrets := shareSecrets(t, tc, w.GetId(), w.GetPublicKey())
	// The coordinator's and every signer's databases, and the backups.
	files := append(allFiles(t, tc.Dir()), allFiles(t, backupDir)...)
	for name, secret := range secrets {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, secret) {
				t.Errorf("%s appears in clear in %s", name, f)
			}
		}
		for i, m := range relayed {
			if bytes.Contains(m, secret) {
				t.Errorf("%s appears in clear in relayed message %d", name, i)
			}
		}
	}
	t.Logf("searched %d files and %d relayed messages for %d secrets", len(files), len(relayed), len(secrets))
}

// shareSecrets opens each signer's share with its KEK and returns the
// secrets in it, plus the whole private key reconstructed from two shares
// (checked against the wallet's public key, so the search is for the
// real thing).
func shareSecrets(t *testing.T, tc *testCluster, walletID string, pub []byte) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	secrets := map[string][]byte{}
	cfgs := map[party.ID]*cmp.Config{}
	for _, name := range tc.Names {
		dir := tc.SignerDir(name)
		d, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(dir, "shares.db")})
		if err != nil {
			t.Fatal(err)
		}
		var sealed []byte
		err = d.GetContext(ctx, &sealed, `SELECT sealed FROM shares WHERE wallet_id = ? AND state = 'active'`, walletID)
		_ = d.Close()
		if err != nil {
			t.Fatalf("%s holds no active share: %v", name, err)
		}
		k, err := kek.Load(filepath.Join(dir, "kek.bin"))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := k.Open(walletID, name, sealed)
		k.Destroy()
		if err != nil {
			t.Fatal(err)
		}
		cfg := cmp.EmptyConfig(curve.Secp256k1{})
		if err := cfg.UnmarshalBinary(plain); err != nil {
			t.Fatal(err)
		}
		cfgs[party.ID(name)] = cfg
		x, err := cfg.ECDSA.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		secrets[name+" ECDSA share"] = x
		secrets[name+" Paillier p"] = cfg.Paillier.P().Bytes()
		secrets[name+" Paillier q"] = cfg.Paillier.Q().Bytes()
		secrets[name+" ElGamal secret"], _ = cfg.ElGamal.MarshalBinary()
	}
	// x = λ1·x1 + λ2·x2 for the quorum {signer-1, signer-2}.
	group := curve.Secp256k1{}
	quorum := []party.ID{"signer-1", "signer-2"}
	lambda := polynomial.Lagrange(group, quorum)
	key := group.NewScalar()
	for _, id := range quorum {
		key.Add(group.NewScalar().Set(lambda[id]).Mul(cfgs[id].ECDSA))
	}
	derived, err := key.ActOnBase().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(derived, pub) {
		t.Fatalf("reconstructed key does not match the wallet's public key: the check would search for the wrong bytes")
	}
	secrets["the whole private key"], _ = key.MarshalBinary()
	return secrets
}

func allFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(path, ".pem") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSignerKilledDuringKeygen stops a signer in the middle of a key
// generation: the wallet fails, naming the signer, and no signer holds a
// usable share of it.
func TestSignerKilledDuringKeygen(t *testing.T) {
	if testing.Short() {
		t.Skip("runs part of a CMP key generation; skipped with -short")
	}
	tc := startCluster(t, 3, 2, false)
	ctx := context.Background()
	res, err := tc.client.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	walletID := res.Msg.GetWallet().GetId()
	for {
		open, err := tc.Server.Store().OpenCeremonies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) == 1 && open[0].State == store.CeremonyRunning {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	tc.StopSigner("signer-3")
	w := tc.waitWallet(t, walletID, time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_FAILED || !strings.Contains(w.GetFailureReason(), "signer-3") {
		t.Fatalf("wallet after a signer died mid-keygen: %v %q", w.GetStatus(), w.GetFailureReason())
	}
	// Give the surviving signers a moment to settle, then check every
	// signer's database, the stopped one's included.
	time.Sleep(time.Second)
	for _, name := range tc.Names {
		d, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(tc.SignerDir(name), "shares.db")})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = d.GetContext(ctx, &n, `SELECT COUNT(*) FROM shares WHERE wallet_id = ?`, walletID)
		_ = d.Close()
		if err != nil || n != 0 {
			t.Fatalf("%s keeps %d shares of the failed wallet (err %v)", name, n, err)
		}
	}
}
