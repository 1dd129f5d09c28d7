package signer_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ecsig"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/internal/proctest"
	"github.com/sigil-wallet/sigil/server/servertest"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/kek"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

// seedProcessWallet records the fixture key as a finished key generation
// in the coordinator database and imports each signer's share into the
// database its `sigil signer` process will use (a KEK of its own in its data
// folder), as the in-process tests seed theirs.
func seedProcessWallet(t *testing.T, h *proctest.Harness, dbURL string, names []string, threshold int) (string, []byte) {
	t.Helper()
	ctx := t.Context()
	cfgs := mpctest.Configs(t, len(names), threshold)
	pub, err := mpc.PublicKey(cfgs[party.ID(names[0])])
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, db.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := store.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletCreating, Threshold: threshold, Signers: names}
	keygen := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, WalletID: w.ID, State: store.CeremonyWaiting,
		Threshold: threshold, GroupSigners: names}
	if _, _, err := st.CreateWallet(ctx, w, store.Work{Ceremony: keygen}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: keygen.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: pub}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		dir := h.SignerDir(name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		k, err := kek.Create(filepath.Join(dir, "kek.bin"))
		if err != nil {
			t.Fatal(err)
		}
		k.Destroy()
		paths := h.PKI.Nodes[name]
		s, err := signer.New(ctx, signer.Config{
			CoordinatorURL: "https://127.0.0.1:1", // never dialled: the share goes straight to the database
			CertFile:       paths.CertPath, KeyFile: paths.KeyPath, CAFile: h.PKI.CAPath,
			KEKFile: filepath.Join(dir, "kek.bin"), SQLitePath: filepath.Join(dir, "shares.db"),
		})
		if err != nil {
			t.Fatal(err)
		}
		err = signer.ImportShare(ctx, s, w.ID, keygen.ID, cfgs[party.ID(name)])
		_ = s.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return w.ID, pub
}

type ceremonyRow struct {
	ID      string `db:"id"`
	State   string `db:"state"`
	Parties string `db:"parties"`
	Attempt int    `db:"attempt"`
}

func signCeremonies(t *testing.T, d *db.DB, signatureID string) []ceremonyRow {
	t.Helper()
	var rows []ceremonyRow
	if err := d.SelectContext(t.Context(), &rows, d.Rebind(`SELECT id, state, parties, attempt FROM ceremonies
		WHERE signature_id = ? ORDER BY seq`), signatureID); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestSignerProcessKilledMidSigning runs the coordinator and three signers
// (2-of-3, the fixture key) as `sigil` processes. The signers know two
// replica URLs, the first of a replica killed before they start: they fail
// over to the live one. A signer process taking part in a signature is
// killed with SIGKILL once it has sent protocol messages; the signature
// completes through the other quorum. The killed signer is started again,
// nothing else done, and takes part in the next signature, which only it
// can complete once another signer is killed.
func TestSignerProcessKilledMidSigning(t *testing.T) {
	names := []string{"signer-1", "signer-2", "signer-3"}
	h := proctest.New(t, names, nil) // first: it skips under -short
	dbURL := dbtest.PostgresURL(t)
	ctx := t.Context()
	walletID, pub := seedProcessWallet(t, h, dbURL, names, 2)

	opts := proctest.ServerOptions{DatabaseURL: dbURL, MPCSigners: names, Threshold: 2,
		Args: []string{"--sign-timeout", "90s", "--quorum-wait", "60s"}}
	gone := h.StartServer("replica-0", opts)
	gone.Kill()
	r := h.StartServer("replica-1", opts)
	signers := map[string]*proctest.Signer{}
	for _, name := range names {
		signers[name] = h.StartSigner(name, []string{gone.NodeURL, r.NodeURL})
	}
	online := func(n float64) func() (bool, error) {
		return func() (bool, error) {
			v, err := proctest.Metric(ctx, r.MetricsURL, "sigil_signers_online")
			return v == n, err
		}
	}
	proctest.Eventually(t, 60*time.Second, "three signers online (through the second URL)", online(3))

	token := h.Token(r, "admin")
	api := walletv1connect.NewWalletServiceClient(servertest.H2CClient(), r.APIURL,
		connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+token)
				return next(ctx, req)
			}
		})))
	coord, err := db.Open(ctx, db.Config{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()

	sign := func(msg string) string {
		hash := sha256.Sum256([]byte(msg))
		resp, err := api.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{WalletId: walletID,
			Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hash[:]}}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.GetSignature().GetId()
	}
	waitSigned := func(id string) {
		t.Helper()
		proctest.Eventually(t, 4*time.Minute, "signature "+id, func() (bool, error) {
			got, err := api.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: id}))
			if err != nil {
				return false, err
			}
			sg := got.Msg.GetSignature()
			if sg.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_FAILED {
				t.Fatalf("signature %s failed: %s", id, sg.GetFailureReason())
			}
			return sg.GetStatus() == walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED, nil
		})
		var row struct {
			Digest []byte `db:"digest"`
			R      []byte `db:"sig_r"`
			S      []byte `db:"sig_s"`
			V      int    `db:"recovery_id"`
		}
		if err := coord.GetContext(ctx, &row, coord.Rebind(`SELECT digest, sig_r, sig_s, recovery_id FROM signatures WHERE id = ?`), id); err != nil {
			t.Fatal(err)
		}
		var sig ecsig.Signature
		copy(sig.R[:], row.R)
		copy(sig.S[:], row.S)
		sig.V = byte(row.V)
		if !ecsig.Verify(pub, row.Digest, sig) {
			t.Fatalf("signature %s does not verify", id)
		}
	}

	// Kill a party once it has sent protocol messages for the ceremony.
	first := sign("first")
	var victim string
	proctest.Eventually(t, 2*time.Minute, "a party to be mid-signing", func() (bool, error) {
		for _, c := range signCeremonies(t, coord, first) {
			if c.State != string(store.CeremonyRunning) || c.Parties == "" {
				continue
			}
			for _, p := range strings.Split(c.Parties, ",") {
				var sent int
				if err := coord.GetContext(ctx, &sent, coord.Rebind(`SELECT COUNT(*) FROM relay_messages WHERE ceremony_id = ? AND sender = ?`), c.ID, p); err != nil {
					return false, err
				}
				if sent > 0 {
					victim = p
					return true, nil
				}
			}
		}
		return false, nil
	})
	signers[victim].Kill()
	if cs := signCeremonies(t, coord, first); cs[len(cs)-1].State != string(store.CeremonyRunning) {
		t.Fatalf("the ceremony ended before %s was killed: %+v", victim, cs)
	}
	waitSigned(first)
	cs := signCeremonies(t, coord, first)
	last := cs[len(cs)-1]
	if len(cs) < 2 || last.State != string(store.CeremonySucceeded) || slices.Contains(strings.Split(last.Parties, ","), victim) {
		t.Fatalf("after killing %s mid-signing, ceremonies = %+v; want a retry that succeeded without it", victim, cs)
	}
	t.Logf("killed %s mid-signing; signed by %s on attempt %d", victim, last.Parties, last.Attempt)

	// The killed signer comes back by itself once started again.
	signers[victim].Restart()
	proctest.Eventually(t, 60*time.Second, victim+" back online", online(3))
	var other string
	for _, n := range names {
		if n != victim {
			other = n
			break
		}
	}
	signers[other].Kill()
	proctest.Eventually(t, 60*time.Second, other+" offline", online(2))
	second := sign("second")
	waitSigned(second)
	cs = signCeremonies(t, coord, second)
	if last := cs[len(cs)-1]; !slices.Contains(strings.Split(last.Parties, ","), victim) {
		t.Fatalf("second signature signed by %s, without the restarted %s", last.Parties, victim)
	}
}
