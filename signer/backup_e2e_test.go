package signer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"filippo.io/age"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/ethtest"
	"github.com/sigil-wallet/sigil/internal/s3test"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// logBuffer keeps every log line of a cluster, at debug level, to search
// it for secrets.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// recoveryKeys writes a recipients file and returns it with the identity.
func recoveryKeys(t *testing.T, pq bool) (string, age.Identity) {
	t.Helper()
	var id age.Identity
	var rec fmt.Stringer
	if pq {
		h, err := age.GenerateHybridIdentity()
		if err != nil {
			t.Fatal(err)
		}
		id, rec = h, h.Recipient()
	} else {
		x, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		id, rec = x, x.Recipient()
	}
	p := filepath.Join(t.TempDir(), "recipients.txt")
	if err := os.WriteFile(p, []byte(rec.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, id
}

// waitBackup polls the wallet API until the wallet's backup is in state
// want, and returns it.
func (tc *testCluster) waitBackup(t *testing.T, id string, want walletv1.BackupState) *walletv1.Backup {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last *walletv1.Backup
	for time.Now().Before(deadline) {
		res, err := tc.client.GetWallet(context.Background(), connect.NewRequest(&walletv1.GetWalletRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		if last = res.Msg.GetWallet().GetBackup(); last.GetState() == want {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("wallet %s backup: %v, want %v", id, last, want)
	return nil
}

// TestShareBackupsAndRecovery: every share of a 2-of-3 and a 3-of-5 wallet
// is backed up, to a folder and to a real S3 server; the wallet API says
// so; t of the backups rebuild a key whose signature go-ethereum and
// OpenSSL verify against the wallet's public key, t-1 do not; and no share
// is found in clear in the stored objects or in any log line.
func TestShareBackupsAndRecovery(t *testing.T) {
	for _, target := range []string{"dir", "s3"} {
		for _, shape := range []struct{ n, t int }{{3, 2}, {5, 3}} {
			t.Run(fmt.Sprintf("%s/%dof%d", target, shape.t, shape.n), func(t *testing.T) {
				testShareBackups(t, target, shape.n, shape.t)
			})
		}
	}
}

func testShareBackups(t *testing.T, target string, n, threshold int) {
	ctx := context.Background()
	recipients, identity := recoveryKeys(t, threshold == 3)
	cfg := backup.Config{RecipientsFile: recipients}
	var reader backup.Reader
	var stored string // the folder holding the stored bytes
	switch target {
	case "dir":
		cfg.Dir = filepath.Join(t.TempDir(), "backups")
		reader, stored = backup.Dir{Root: cfg.Dir}, cfg.Dir
	case "s3":
		srv := s3test.Start(t, "recovery")
		s3test.SetCredentials(t)
		cfg.S3 = backup.S3Config{Bucket: "recovery", Prefix: "sigil/prod", Endpoint: srv.Endpoint}
		s, err := backup.NewS3(ctx, cfg.S3)
		if err != nil {
			t.Fatal(err)
		}
		reader, stored = s, srv.Root
	}
	logs := &logBuffer{}
	tc := startClusterOpts(t, cluster.Options{Signers: n, Threshold: threshold, DeferSigners: true, Backup: cfg,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	walletID, pub := tc.seedWallet(t, n, threshold)

	b := tc.waitBackup(t, walletID, walletv1.BackupState_BACKUP_STATE_COMPLETE)
	if len(b.GetShares()) != n {
		t.Fatalf("backup shares: %v", b.GetShares())
	}
	for i, sh := range b.GetShares() {
		want := filepath.Join(cfg.Dir, walletID, sh.GetSigner()+".age")
		if target == "s3" {
			want = "s3://recovery/sigil/prod/" + walletID + "/" + sh.GetSigner() + ".age"
		}
		if sh.GetSigner() != cluster.SignerName(i+1) || sh.GetLocation() != want || sh.GetState() != walletv1.BackupState_BACKUP_STATE_COMPLETE {
			t.Fatalf("share backup %d: %v, want location %s", i, sh, want)
		}
	}

	shares, err := backup.Read(ctx, []backup.Location{{Store: reader, Where: target}}, []age.Identity{identity}, walletID)
	if err != nil || len(shares) != n {
		t.Fatalf("read %d backups: %v", len(shares), err)
	}
	if _, err := backup.Recover(shares[:threshold-1]); err == nil {
		t.Fatal("t-1 backups rebuilt a key")
	}
	rec, err := backup.Recover(shares[n-threshold:])
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Key.Zero()
	verifyRecoveredKey(t, rec.Key.Serialize(), pub)

	if !bytes.Contains(logs.bytes(), []byte("share backed up")) {
		t.Fatal("the log capture is not working: no backup was logged")
	}
	secrets := fixtureSecrets(t, n, threshold)
	secrets["the whole private key"] = rec.Key.Serialize()
	files := allFiles(t, stored)
	if len(files) < n {
		t.Fatalf("only %d files stored under %s", len(files), stored)
	}
	for name, secret := range secrets {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, secret) {
				t.Fatalf("%s is in clear in %s", name, f)
			}
		}
		if bytes.Contains(logs.bytes(), secret) {
			t.Fatalf("%s is in clear in the logs", name)
		}
	}
	t.Logf("searched %d stored files and %d bytes of logs for %d secrets", len(files), len(logs.bytes()), len(secrets))
}

// verifyRecoveredKey signs with the key using go-ethereum and checks the
// signature with go-ethereum (ecrecover and VerifySignature) and OpenSSL.
func verifyRecoveredKey(t *testing.T, raw, pub []byte) {
	t.Helper()
	key, err := crypto.ToECDSA(raw)
	if err != nil {
		t.Fatal(err)
	}
	digest := crypto.Keccak256([]byte("signed with a recovered key"))
	sig, err := crypto.Sign(digest, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := ethtest.VerifyHash(pub, digest, sig[:32], sig[32:64]); err != nil {
		t.Fatalf("go-ethereum: %v", err)
	}
	es, err := ecsig.FromRS(sig[:32], sig[32:64], pub, digest)
	if err != nil {
		t.Fatal(err)
	}
	ethtest.VerifyDER(t, pub, digest, es.DER())
}

// fixtureSecrets returns encodings of the fixture shares that must never be
// stored or logged in clear: each secret scalar (raw, hex, base64), the
// Paillier primes, and slices of the whole encoded share.
func fixtureSecrets(t *testing.T, n, threshold int) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for id, cfg := range mpctest.Configs(t, n, threshold) {
		whole, err := cfg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		scalar, err := cfg.ECDSA.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		name := string(id)
		out[name+" scalar"] = scalar
		out[name+" scalar hex"] = []byte(hex.EncodeToString(scalar))
		out[name+" scalar base64"] = []byte(base64.StdEncoding.EncodeToString(scalar))
		out[name+" Paillier p"] = cfg.Paillier.P().Bytes()
		out[name+" Paillier q"] = cfg.Paillier.Q().Bytes()
		out[name+" share head"] = whole[:48]
		out[name+" share middle"] = whole[len(whole)/2 : len(whole)/2+48]
	}
	return out
}

// TestShareBackupWhileS3IsDown: with the S3 server down, the wallet's backup
// is failing with the reason and signing goes on; when the server returns,
// the backup is made and the state turns complete.
func TestShareBackupWhileS3IsDown(t *testing.T) {
	srv := s3test.Start(t, "recovery")
	s3test.SetCredentials(t)
	srv.Stop()
	recipients, identity := recoveryKeys(t, true)
	cfg := backup.Config{RecipientsFile: recipients, RetryMin: 100 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		S3: backup.S3Config{Bucket: "recovery", Endpoint: srv.Endpoint}}
	tc := startClusterOpts(t, cluster.Options{Signers: 3, Threshold: 2, DeferSigners: true, Backup: cfg})
	walletID, pub := tc.seedWallet(t, 3, 2)

	b := tc.waitBackup(t, walletID, walletv1.BackupState_BACKUP_STATE_FAILING)
	if !strings.Contains(b.GetReason(), "connect: connection refused") || !strings.Contains(b.GetReason(), "s3://recovery/"+walletID) {
		t.Fatalf("failing reason: %q", b.GetReason())
	}
	t.Logf("while S3 is down: %s", b.GetReason())
	if !testing.Short() {
		s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(3)}}, time.Minute)
		verifySignature(t, pub, s)
	}

	srv.Restart()
	tc.waitBackup(t, walletID, walletv1.BackupState_BACKUP_STATE_COMPLETE)
	s, err := backup.NewS3(context.Background(), cfg.S3)
	if err != nil {
		t.Fatal(err)
	}
	shares, err := backup.Read(context.Background(), []backup.Location{{Store: s, Where: "s3"}}, []age.Identity{identity}, walletID)
	if err != nil || len(shares) != 3 {
		t.Fatalf("read %d backups: %v", len(shares), err)
	}
	for _, sh := range shares {
		if sh.Config.ID != party.ID(sh.Signer) {
			t.Fatalf("backup of %s holds %s's share", sh.Signer, sh.Config.ID)
		}
	}
}
