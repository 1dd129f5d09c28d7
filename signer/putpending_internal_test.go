package signer

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"connectrpc.com/connect"

	ceremonyv1 "github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/ceremony/v1/ceremonyv1connect"
	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
)

// ceremonyStates answers GetCeremony from a map (unknown ids: NotFound).
type ceremonyStates struct {
	ceremonyv1connect.CeremonyServiceClient
	states map[string]ceremonyv1.CeremonyState
}

func (c ceremonyStates) GetCeremony(_ context.Context, req *connect.Request[ceremonyv1.GetCeremonyRequest]) (*connect.Response[ceremonyv1.GetCeremonyResponse], error) {
	st, ok := c.states[req.Msg.GetCeremonyId()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such ceremony"))
	}
	return connect.NewResponse(&ceremonyv1.GetCeremonyResponse{Ceremony: &ceremonyv1.Ceremony{Id: req.Msg.GetCeremonyId(), State: st}}), nil
}

// TestPutPendingSettlesALostAttempt: a key generation started again after
// its replica died finds the share the lost attempt left pending. It is
// discarded when the coordinator says that attempt failed (or no longer
// knows it), and kept, refusing the new one, while it may still succeed or
// once it is active.
func TestPutPendingSettlesALostAttempt(t *testing.T) {
	ctx := context.Background()
	st, err := openShares(ctx, dbtest.Open(t, db.SQLite))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]ceremonyv1.CeremonyState{
		"cer_failed":  ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED,
		"cer_running": ceremonyv1.CeremonyState_CEREMONY_STATE_RUNNING,
	}
	s := &Signer{shares: st, ceremony: ceremonyStates{states: states}, logger: slog.New(slog.DiscardHandler)}
	put := func(wallet, ceremony string) error {
		return s.putPending(ctx, &share{WalletID: wallet, KeyEpoch: firstEpoch, Scheme: schemeSecp256k1, KeygenCeremonyID: ceremony,
			PublicKey: []byte{2, 1}, Sealed: []byte{9}})
	}
	for _, tc := range []struct {
		lost    string // the ceremony of the pending share already there
		replace bool
	}{
		{lost: "cer_failed", replace: true},
		{lost: "cer_forgotten", replace: true}, // NotFound: failed
		{lost: "cer_running", replace: false},
	} {
		wallet := "wal_" + tc.lost
		if err := put(wallet, tc.lost); err != nil {
			t.Fatal(err)
		}
		err := put(wallet, "cer_retry")
		got, gerr := st.ofEpoch(ctx, wallet, firstEpoch)
		if gerr != nil {
			t.Fatal(gerr)
		}
		if tc.replace {
			if err != nil || got.KeygenCeremonyID != "cer_retry" || got.State != sharePending {
				t.Fatalf("lost attempt %s: %v; share = %+v", tc.lost, err, got)
			}
			continue
		}
		if !errors.Is(err, errShareExists) || got.KeygenCeremonyID != tc.lost {
			t.Fatalf("lost attempt %s: %v; share = %+v, want the old one kept", tc.lost, err, got)
		}
	}
	// An active share is never replaced, whatever the coordinator says.
	if err := put("wal_active", "cer_failed_too"); err != nil {
		t.Fatal(err)
	}
	sh, _ := st.ofEpoch(ctx, "wal_active", firstEpoch)
	if ok, err := st.activate(ctx, sh); !ok || err != nil {
		t.Fatalf("activate: %v %v", ok, err)
	}
	states["cer_failed_too"] = ceremonyv1.CeremonyState_CEREMONY_STATE_FAILED
	if err := put("wal_active", "cer_retry"); !errors.Is(err, errShareExists) {
		t.Fatalf("an active share was replaced: %v", err)
	}
	if sh, _ := st.ofEpoch(ctx, "wal_active", firstEpoch); sh.State != shareActive || sh.KeygenCeremonyID != "cer_failed_too" {
		t.Fatalf("active share = %+v", sh)
	}
}
