package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
)

func openKeygen(t *testing.T, s store.Store) (*store.Wallet, *store.Ceremony) {
	t.Helper()
	w, work := NewWallet("", 1)
	if _, _, err := s.CreateWallet(context.Background(), w, work); err != nil {
		t.Fatal(err)
	}
	return w, work.Ceremony
}

func testCeremonyKeygenLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	w, c := openKeygen(t, s)
	open, err := s.OpenCeremonies(ctx)
	if err != nil || len(open) != 1 || open[0].ID != c.ID || open[0].State != store.CeremonyWaiting {
		t.Fatalf("OpenCeremonies = %v, %v", open, err)
	}
	// Reports on a ceremony that has not started are refused.
	if err := s.RecordReport(ctx, &store.CeremonyReport{CeremonyID: c.ID, Signer: "signer-1", OK: true}); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("report before start: %v", err)
	}
	deadline := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	if err := s.StartCeremony(ctx, c.ID, w.Signers, deadline); err != nil {
		t.Fatal(err)
	}
	if err := s.StartCeremony(ctx, c.ID, w.Signers, deadline); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("second start: %v", err)
	}
	got, err := s.GetCeremony(ctx, c.ID)
	if err != nil || got.State != store.CeremonyRunning || len(got.Parties) != 3 || !got.Deadline.Equal(deadline) {
		t.Fatalf("running ceremony = %+v, %v", got, err)
	}
	for _, signer := range w.Signers {
		if err := s.RecordReport(ctx, &store.CeremonyReport{CeremonyID: c.ID, Signer: signer, OK: true, Output: PubKey}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordReport(ctx, &store.CeremonyReport{CeremonyID: c.ID, Signer: "signer-1", OK: true}); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("duplicate report: %v", err)
	}
	reports, err := s.Reports(ctx, c.ID)
	if err != nil || len(reports) != 3 || !bytes.Equal(reports[0].Output, PubKey) {
		t.Fatalf("Reports = %v, %v", reports, err)
	}
	if err := s.AppendMessages(ctx, c.ID, "signer-1", []store.OutgoingMessage{{Recipient: "signer-2", Sealed: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: PubKey}}); err != nil {
		t.Fatal(err)
	}
	wallet, _ := s.GetWallet(ctx, w.ID)
	if wallet.Status != store.WalletActive || !bytes.Equal(wallet.PublicKey, PubKey) {
		t.Fatalf("wallet after keygen = %+v", wallet)
	}
	if n, _ := s.CountRelayMessages(ctx, c.ID); n != 0 {
		t.Fatalf("%d relayed messages kept after the ceremony ended", n)
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonyFailed, Reason: "late"}); !errors.Is(err, store.ErrStateConflict) {
		t.Fatalf("second finish: %v", err)
	}
	if open, _ := s.OpenCeremonies(ctx); len(open) != 0 {
		t.Fatalf("ended ceremony still open: %v", open)
	}
}

func testCeremonyKeygenFailure(t *testing.T, s store.Store) {
	ctx := context.Background()
	w, c := openKeygen(t, s)
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonyFailed, Reason: "signer-3 did not join",
		Wallet: &store.WalletOutcome{Status: store.WalletFailed, Reason: "signer-3 did not join"}}); err != nil {
		t.Fatal(err)
	}
	wallet, _ := s.GetWallet(ctx, w.ID)
	if wallet.Status != store.WalletFailed || wallet.FailureReason != "signer-3 did not join" || wallet.PublicKey != nil {
		t.Fatalf("wallet after failed keygen = %+v", wallet)
	}
	got, _ := s.GetCeremony(ctx, c.ID)
	if got.State != store.CeremonyFailed || got.FailureReason != "signer-3 did not join" {
		t.Fatalf("ceremony = %+v", got)
	}
}

func newSignCeremony(t *testing.T, s store.Store) (*store.Signature, *store.Ceremony) {
	t.Helper()
	w := mustActiveWallet(t, s)
	sg, _ := newSignature(w.ID, "", 3)
	c := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonySign, WalletID: w.ID, SignatureID: sg.ID,
		State: store.CeremonyWaiting, Threshold: 2, GroupSigners: w.Signers}
	if _, _, err := s.CreateSignature(context.Background(), sg, store.Work{Ceremony: c}); err != nil {
		t.Fatal(err)
	}
	return sg, c
}

func testCeremonySignRetryThenSucceed(t *testing.T, s store.Store) {
	ctx := context.Background()
	sg, c := newSignCeremony(t, s)
	if err := s.StartCeremony(ctx, c.ID, []string{"signer-1", "signer-2"}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	retry := &store.Ceremony{ID: ids.New(ids.Ceremony), Attempt: 1, Excluded: []string{"signer-2"}}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonyFailed, Reason: "signer-2 timed out", Retry: retry}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetSignature(ctx, sg.ID)
	if got.Status != store.SignaturePending {
		t.Fatalf("signature after a retried attempt = %s", got.Status)
	}
	var open []*store.Ceremony
	all, _ := s.OpenCeremonies(ctx)
	for _, oc := range all {
		if oc.Kind == store.CeremonySign { // the wallet's keygen row is open too: mustActiveWallet skipped it
			open = append(open, oc)
		}
	}
	if len(open) != 1 || open[0].ID != retry.ID || open[0].SignatureID != sg.ID || open[0].Attempt != 1 || open[0].KeyScheme != store.KeySchemeSecp256k1 ||
		len(open[0].Excluded) != 1 || open[0].Excluded[0] != "signer-2" || len(open[0].GroupSigners) != 3 {
		t.Fatalf("retry ceremony = %+v", open)
	}
	r, sv := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if err := s.StartCeremony(ctx, retry.ID, []string{"signer-1", "signer-3"}, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: retry.ID, State: store.CeremonySucceeded,
		Signature: &store.SignatureOutcome{Status: store.SignatureSigned, R: r, S: sv, RecoveryID: 1}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetSignature(ctx, sg.ID)
	if got.Status != store.SignatureSigned || !bytes.Equal(got.R, r) || !bytes.Equal(got.S, sv) || got.RecoveryID != 1 {
		t.Fatalf("signed signature = %+v", got)
	}
}

func testCeremonySignRejected(t *testing.T, s store.Store) {
	ctx := context.Background()
	sg, c := newSignCeremony(t, s)
	if err := s.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: c.ID, State: store.CeremonyFailed,
		Reason: "signer-1 refused: policy", Signature: &store.SignatureOutcome{Status: store.SignatureRejected, Reason: "signer-1 refused: policy"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetSignature(ctx, sg.ID)
	if got.Status != store.SignatureRejected || got.FailureReason != "signer-1 refused: policy" {
		t.Fatalf("rejected signature = %+v", got)
	}
}

func testRelayMailbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, c := openKeygen(t, s)
	other := ids.New(ids.Ceremony)
	if err := s.AppendMessages(ctx, c.ID, "signer-1", []store.OutgoingMessage{
		{Recipient: "signer-2", Sealed: []byte("a")}, {Recipient: "signer-3", Sealed: []byte("b")}, {Recipient: "signer-2", Sealed: []byte("c")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendMessages(ctx, other, "signer-1", []store.OutgoingMessage{{Recipient: "signer-2", Sealed: []byte("z")}}); err != nil {
		t.Fatal(err)
	}
	box, err := s.Mailbox(ctx, c.ID, "signer-2", 0, 10)
	if err != nil || len(box) != 2 || string(box[0].Sealed) != "a" || string(box[1].Sealed) != "c" || box[0].Sender != "signer-1" {
		t.Fatalf("mailbox = %v, %v", box, err)
	}
	// Resuming from a cursor returns only what came after it.
	rest, err := s.Mailbox(ctx, c.ID, "signer-2", box[0].Pos, 10)
	if err != nil || len(rest) != 1 || string(rest[0].Sealed) != "c" {
		t.Fatalf("resumed mailbox = %v, %v", rest, err)
	}
	if mine, _ := s.Mailbox(ctx, c.ID, "signer-1", 0, 10); len(mine) != 0 {
		t.Fatalf("sender sees its own outgoing mail: %v", mine)
	}
	if n, _ := s.CountRelayMessages(ctx, ""); n != 4 {
		t.Fatalf("CountRelayMessages = %d, want 4", n)
	}
}

// The relay quota counts each sender's messages and bytes in a ceremony,
// refuses a whole batch that would pass either bound, and stores nothing of
// it; other senders and ceremonies have their own budgets.
func testRelayQuota(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, c := openKeygen(t, s)
	limit := store.RelayLimit{Messages: 3, Bytes: 10}
	msg := func(b string) store.OutgoingMessage {
		return store.OutgoingMessage{Recipient: "signer-2", Sealed: []byte(b)}
	}
	if err := s.AppendMessagesWithin(ctx, c.ID, "signer-1", []store.OutgoingMessage{msg("aaaa"), msg("bbbb")}, limit); err != nil {
		t.Fatalf("within the quota: %v", err)
	}
	var qe *store.QuotaError
	err := s.AppendMessagesWithin(ctx, c.ID, "signer-1", []store.OutgoingMessage{msg("ccc")}, limit)
	if !errors.As(err, &qe) || !errors.Is(err, store.ErrQuotaExceeded) || qe.UsedMessages != 2 || qe.UsedBytes != 8 || qe.Bytes != 3 {
		t.Fatalf("past the byte bound: %v (%+v), want a QuotaError counting 2 messages and 8 bytes", err, qe)
	}
	if err := s.AppendMessagesWithin(ctx, c.ID, "signer-1", []store.OutgoingMessage{msg("c"), msg("d")}, limit); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("past the message bound: %v", err)
	}
	if n, _ := s.CountRelayMessages(ctx, c.ID); n != 2 {
		t.Fatalf("refused batches left messages behind: %d stored, want 2", n)
	}
	if err := s.AppendMessagesWithin(ctx, c.ID, "signer-1", []store.OutgoingMessage{msg("cc")}, limit); err != nil {
		t.Fatalf("up to the bounds exactly: %v", err)
	}
	if err := s.AppendMessagesWithin(ctx, c.ID, "signer-3", []store.OutgoingMessage{msg("0123456789")}, limit); err != nil {
		t.Fatalf("another sender's budget: %v", err)
	}
}
