package ceremony

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

func TestBlame(t *testing.T) {
	parties := []string{"s1", "s2", "s3"}
	for _, tc := range []struct {
		name     string
		culprits []string
		online   []string
		want     []string
	}{
		{"accuses one: both leave", []string{"s2"}, parties, []string{"s1", "s2"}},
		{"accuses several: only the accuser leaves", []string{"s2", "s3"}, parties, []string{"s1"}},
		{"accuses one twice: still one", []string{"s2", "s2"}, parties, []string{"s1", "s2"}},
		{"accuses an outsider", []string{"s9"}, parties, []string{"s1"}},
		{"accuses itself", []string{"s1"}, parties, []string{"s1"}},
		{"names nobody", nil, parties, []string{"s1"}},
		{"a party went offline: evidence wins", []string{"s2"}, []string{"s1", "s2"}, []string{"s3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := blame(parties, "s1", tc.culprits, tc.online); !slices.Equal(got, tc.want) {
				t.Fatalf("blame = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMaliciousBlameDoesNotExcludeHonestSigners drives the orchestrator's
// failure handling on a real store: a malicious party of a signing
// attempt reports a failure and names honest parties as culprits. The
// retry's quorum must not lose the honest signers on its word alone.
func TestMaliciousBlameDoesNotExcludeHonestSigners(t *testing.T) {
	for _, tc := range []struct {
		name         string
		n, threshold int
		parties      []string
		culprits     []string
		wantExcluded []string
	}{
		// 3-of-5: naming two honest signers costs the liar its own place only.
		{"3of5 names two", 5, 3, []string{"signer-1", "signer-2", "signer-3"}, []string{"signer-2", "signer-3"}, []string{"signer-1"}},
		// Naming one: accuser and accused are separated, both leave.
		{"3of5 names one", 5, 3, []string{"signer-1", "signer-2", "signer-3"}, []string{"signer-2"}, []string{"signer-1", "signer-2"}},
		// 2-of-3: excluding both would leave no quorum, so nobody is
		// excluded on an accusation and rotation picks the next quorum.
		{"2of3 names one", 3, 2, []string{"signer-1", "signer-2"}, []string{"signer-2"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, dbtest.Open(t, db.SQLite))
			if err != nil {
				t.Fatal(err)
			}
			group := make([]string, tc.n)
			for i := range group {
				group[i] = "signer-" + string(rune('1'+i))
			}
			c := signingAttempt(t, st, group, tc.threshold, tc.parties)
			o := New(st, Config{Presence: newFakePresence(group...)})
			if err := o.fail(ctx, c, "signer-1", "protocol aborted", tc.culprits, false); err != nil {
				t.Fatal(err)
			}
			open, err := st.OpenCeremonies(ctx)
			if err != nil || len(open) != 1 || open[0].SignatureID != c.SignatureID || open[0].Attempt != 1 {
				t.Fatalf("open ceremonies after the failure = %v, %v; want one retry", open, err)
			}
			if got := open[0].Excluded; !slices.Equal(got, tc.wantExcluded) {
				t.Fatalf("retry excludes %v, want %v", got, tc.wantExcluded)
			}
		})
	}
}

// signingAttempt makes an active MPC wallet of group and a running signing
// ceremony among parties.
func signingAttempt(t *testing.T, st *store.SQL, group []string, threshold int, parties []string) *store.Ceremony {
	t.Helper()
	ctx := context.Background()
	w, work := storetest.NewWallet("", 1)
	w.Signers, w.Threshold = group, threshold
	work.Ceremony.GroupSigners, work.Ceremony.Threshold = group, threshold
	if _, _, err := st.CreateWallet(ctx, w, work); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: work.Ceremony.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: storetest.PubKey}}); err != nil {
		t.Fatal(err)
	}
	d := bytes.Repeat([]byte{7}, 32)
	sg := &store.Signature{ID: ids.New(ids.Signature), RequestHash: d, WalletID: w.ID, Kind: store.KindHash, Hash: d, Digest: d, Status: store.SignaturePending}
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonySign, WalletID: w.ID, SignatureID: sg.ID,
		State: store.CeremonyWaiting, Threshold: threshold, GroupSigners: group}
	if _, _, err := st.CreateSignature(ctx, sg, store.Work{Ceremony: c}); err != nil {
		t.Fatal(err)
	}
	if err := st.StartCeremony(ctx, c.ID, parties, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.State, c.Parties = store.CeremonyRunning, parties
	return c
}
