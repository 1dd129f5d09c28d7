package signer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/ethereum/go-ethereum/crypto"
	"google.golang.org/protobuf/proto"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/ids"
)

// walletBackend is one way of holding a wallet's key. The suite in
// TestWalletAPIBackends runs the same API calls on a wallet of each and
// requires the same behaviour from both.
type walletBackend struct {
	name string
	want walletv1.Backend
	// activeWallet returns the id of an ACTIVE wallet on this backend.
	activeWallet func(t *testing.T, tc *testCluster) string
	// signTimeout bounds one signature (MPC runs a ceremony of seconds).
	signTimeout time.Duration
}

// TestWalletAPIBackends is one wallet-API suite run against the MPC and the
// HSM backend of one coordinator: the application sees the same statuses,
// encodings, idempotency and error codes whichever backend holds the key.
// Each backend's run writes a behaviour record (what the API did, reduced
// to what must not depend on the backend); the records must be equal.
func TestWalletAPIBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MPC signing ceremonies (seconds each) and a SoftHSM driver; skipped with -short")
	}
	if !cluster.SoftHSMAvailable() {
		msg := "SoftHSM2 not available; install it with `apt-get install softhsm2`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// One cluster for both backends: SOFTHSM2_CONF is process-global.
	tc := startClusterOpts(t, cluster.Options{
		Signers: 3, Threshold: 2, DeferSigners: true,
		HSM: &cluster.HSMOptions{ModulePath: cluster.SoftHSMModule},
	})
	backends := []walletBackend{
		{
			// The MPC key comes from the committed fixture (no key
			// generation, which other tests cover): its wallet is ACTIVE
			// from the start, so creation statuses are not compared.
			name: "mpc", want: walletv1.Backend_BACKEND_MPC, signTimeout: time.Minute,
			activeWallet: func(t *testing.T, tc *testCluster) string {
				id, _ := tc.seedWallet(t, 3, 2)
				return id
			},
		},
		{
			name: "hsm", want: walletv1.Backend_BACKEND_HSM, signTimeout: 30 * time.Second,
			activeWallet: createHSMWallet,
		},
	}
	records := map[string]*behaviour{}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := &walletSuite{tc: tc, backend: b, rec: &behaviour{}}
			records[b.name] = s.rec
			s.walletID = b.activeWallet(t, tc)
			s.run(t)
		})
	}
	t.Run("identical", func(t *testing.T) {
		mpc, hsm := records["mpc"], records["hsm"]
		if mpc == nil || hsm == nil {
			t.Fatal("a backend did not run")
		}
		if d := mpc.diff(hsm); d != "" {
			t.Fatalf("the API behaves differently on the two backends (- mpc, + hsm):\n%s", d)
		}
		t.Logf("both backends behaved the same:\n%s", strings.Join(mpc.lines, "\n"))
	})
}

// createHSMWallet creates a wallet through the API, as an application
// would, and waits until the driver has generated its key.
func createHSMWallet(t *testing.T, tc *testCluster) string {
	t.Helper()
	res, err := tc.client.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{
		Name: "backends-suite", Backend: walletv1.Backend_BACKEND_HSM,
	}))
	if err != nil {
		t.Fatal(err)
	}
	w := res.Msg.GetWallet()
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_CREATING {
		t.Fatalf("CreateWallet returned status %v, want CREATING", w.GetStatus())
	}
	if got := tc.waitWallet(t, w.GetId(), 30*time.Second); got.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("HSM wallet %v: %s", got.GetStatus(), got.GetFailureReason())
	}
	return w.GetId()
}

// behaviour is an ordered record of observations, each "step: facts".
type behaviour struct{ lines []string }

func (b *behaviour) add(step, format string, args ...any) {
	b.lines = append(b.lines, step+": "+fmt.Sprintf(format, args...))
}

// diff lists the observations that differ, or "" when none do.
func (b *behaviour) diff(other *behaviour) string {
	var out strings.Builder
	for i := range max(len(b.lines), len(other.lines)) {
		var l, r string
		if i < len(b.lines) {
			l = b.lines[i]
		}
		if i < len(other.lines) {
			r = other.lines[i]
		}
		if l != r {
			fmt.Fprintf(&out, "- %s\n+ %s\n", l, r)
		}
	}
	return out.String()
}

// walletSuite is the suite's state for one backend; its steps run in order
// and later ones use the signatures earlier ones made.
type walletSuite struct {
	tc       *testCluster
	backend  walletBackend
	rec      *behaviour
	walletID string
	pub      []byte
	hashReq  *walletv1.CreateSignatureRequest
	hashSig  *walletv1.Signature
	msgSig   *walletv1.Signature
}

func (s *walletSuite) run(t *testing.T) {
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"wallet", s.wallet},
		{"sign_hash", s.signHash},
		{"sign_message", s.signMessage},
		{"idempotency", s.idempotency},
		{"list", s.list},
		{"error_codes", s.errorCodes},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.fn) && (st.name == "wallet" || st.name == "sign_hash") {
			t.Fatalf("%s failed; the later steps need it", st.name)
		}
	}
}

func (s *walletSuite) wallet(t *testing.T) {
	ctx := context.Background()
	res, err := s.tc.client.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: s.walletID}))
	if err != nil {
		t.Fatal(err)
	}
	w := res.Msg.GetWallet()
	if w.GetBackend() != s.backend.want {
		t.Fatalf("backend %v, want %v", w.GetBackend(), s.backend.want)
	}
	if !ids.Valid(ids.Wallet, w.GetId()) {
		t.Errorf("wallet id %q is not a wal_ id", w.GetId())
	}
	// An MPC wallet names its signer group; an HSM wallet has none. That
	// is the one field meant to differ, so it stays out of the record.
	if (w.GetMpcGroup() != nil) != (s.backend.want == walletv1.Backend_BACKEND_MPC) {
		t.Errorf("mpc_group = %v on a %v wallet", w.GetMpcGroup(), w.GetBackend())
	}
	pub := w.GetPublicKey()
	s.pub = pub
	if len(pub) != 33 || (pub[0] != 2 && pub[0] != 3) {
		t.Fatalf("public key %x is not SEC1 compressed", pub)
	}
	// The addresses, derived by Sigil and, independently, by go-ethereum.
	eth, err := address.Ethereum(pub)
	if err != nil {
		t.Fatal(err)
	}
	btc, err := address.BitcoinP2WPKH(pub, "bc")
	if err != nil {
		t.Fatal(err)
	}
	gethPub, err := crypto.DecompressPubkey(pub)
	if err != nil {
		t.Fatal(err)
	}
	gethAddr := crypto.PubkeyToAddress(*gethPub).Hex() // EIP-55
	a := w.GetAddresses()
	if a.GetEthereum() != eth || a.GetEthereum() != gethAddr {
		t.Errorf("ethereum address %q; address.Ethereum %q, go-ethereum %q", a.GetEthereum(), eth, gethAddr)
	}
	if a.GetBitcoinP2Wpkh() != btc {
		t.Errorf("bitcoin address %q, want %q", a.GetBitcoinP2Wpkh(), btc)
	}
	listed := false
	page, err := s.tc.client.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{
		Status: walletv1.WalletStatus_WALLET_STATUS_ACTIVE, PageSize: 100,
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, lw := range page.Msg.GetWallets() {
		if lw.GetId() == w.GetId() {
			listed = proto.Equal(lw, w)
		}
	}
	s.rec.add("wallet", "status=%v key_scheme=%v failure_reason=%q public_key=%d bytes ethereum=%s bitcoin=%s listed_as_active=%v",
		w.GetStatus(), w.GetKeyScheme(), w.GetFailureReason(), len(pub),
		shape(a.GetEthereum(), "0x", 42, a.GetEthereum() == gethAddr),
		shape(a.GetBitcoinP2Wpkh(), "bc1q", 42, a.GetBitcoinP2Wpkh() == btc),
		listed)
}

// shape describes a string by its prefix, length and correctness, so two
// different addresses of the same form compare equal.
func shape(v, prefix string, length int, correct bool) string {
	return fmt.Sprintf("[prefix %v, length %v, correct %v]", strings.HasPrefix(v, prefix), len(v) == length, correct)
}

func (s *walletSuite) signHash(t *testing.T) {
	ctx := context.Background()
	h := sha256.Sum256([]byte("backends suite " + s.backend.name))
	s.hashReq = &walletv1.CreateSignatureRequest{
		WalletId: s.walletID, ExternalId: "backends-suite:" + s.backend.name + ":hash",
		Payload: &walletv1.CreateSignatureRequest_Hash{Hash: h[:]},
	}
	res, err := s.tc.client.CreateSignature(ctx, connect.NewRequest(s.hashReq))
	if err != nil {
		t.Fatal(err)
	}
	created := res.Msg.GetSignature()
	// The same request again while it is (most likely) still pending.
	again, err := s.tc.client.CreateSignature(ctx, connect.NewRequest(s.hashReq))
	if err != nil {
		t.Fatal(err)
	}
	sg := s.tc.waitSignature(t, created.GetId(), s.backend.signTimeout)
	verifySignature(t, s.pub, sg)
	if !bytes.Equal(sg.GetHash(), h[:]) || !bytes.Equal(sg.GetDigest(), h[:]) {
		t.Errorf("hash %x digest %x, want both %x", sg.GetHash(), sg.GetDigest(), h)
	}
	s.hashSig = sg
	s.rec.add("sign_hash", "created=%v repeat_same_id=%v final=%v external_id_kept=%v %s",
		created.GetStatus(), again.Msg.GetSignature().GetId() == created.GetId(), sg.GetStatus(),
		sg.GetExternalId() == s.hashReq.GetExternalId(), signatureShape(sg))
}

func (s *walletSuite) signMessage(t *testing.T) {
	msg := "Sigil backends suite: sign in as " + s.backend.name
	res, err := s.tc.client.CreateSignature(context.Background(), connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: s.walletID, Payload: &walletv1.CreateSignatureRequest_Message{Message: msg},
	}))
	if err != nil {
		t.Fatal(err)
	}
	created := res.Msg.GetSignature()
	sg := s.tc.waitSignature(t, created.GetId(), s.backend.signTimeout)
	verifySignature(t, s.pub, sg) // includes go-ethereum's personal_sign recovery
	if !bytes.Equal(sg.GetDigest(), address.EIP191Digest([]byte(msg))) || sg.GetMessage() != msg {
		t.Errorf("message %q digest %x: not the EIP-191 digest of %q", sg.GetMessage(), sg.GetDigest(), msg)
	}
	s.msgSig = sg
	s.rec.add("sign_message", "created=%v final=%v %s", created.GetStatus(), sg.GetStatus(), signatureShape(sg))
}

// signatureShape is what a signed result looks like, without its values.
func signatureShape(sg *walletv1.Signature) string {
	r := sg.GetResult()
	return fmt.Sprintf("id_ok=%v wallet_ok=%v kind=%v hash=%d message_set=%v digest=%d failure_reason=%q r=%d s=%d recovery_id_ok=%v der_seq=%v v=27+recovery_id:%v ethereum=%d times_set=%v",
		ids.Valid(ids.Signature, sg.GetId()), ids.Valid(ids.Wallet, sg.GetWalletId()), sg.GetKind(), len(sg.GetHash()),
		sg.GetMessage() != "", len(sg.GetDigest()), sg.GetFailureReason(),
		len(r.GetR()), len(r.GetS()), r.GetRecoveryId() <= 1, len(r.GetDer()) > 0 && r.GetDer()[0] == 0x30,
		len(r.GetEthereum()) == 65 && uint32(r.GetEthereum()[64]) == 27+r.GetRecoveryId(), len(r.GetEthereum()),
		sg.GetCreateTime().IsValid() && sg.GetUpdateTime().IsValid())
}

func (s *walletSuite) idempotency(t *testing.T) {
	ctx := context.Background()
	// The same request after it was signed: the same signature, result
	// included, and no new signing.
	res, err := s.tc.client.CreateSignature(ctx, connect.NewRequest(s.hashReq))
	if err != nil {
		t.Fatal(err)
	}
	same := res.Msg.GetSignature()
	if !proto.Equal(same, s.hashSig) {
		t.Errorf("repeated request returned\n%v\nwant\n%v", same, s.hashSig)
	}
	otherHash := proto.CloneOf(s.hashReq)
	otherHash.Payload = &walletv1.CreateSignatureRequest_Hash{Hash: bytes.Repeat([]byte{0x42}, 32)}
	otherKind := proto.CloneOf(s.hashReq)
	otherKind.Payload = &walletv1.CreateSignatureRequest_Message{Message: "not the same request"}
	codes := make([]string, 0, 2)
	for _, req := range []*walletv1.CreateSignatureRequest{otherHash, otherKind} {
		_, err := s.tc.client.CreateSignature(ctx, connect.NewRequest(req))
		codes = append(codes, codeOf(err))
	}
	for _, c := range codes {
		if c != connect.CodeAlreadyExists.String() {
			t.Errorf("same external_id, different request: %s, want already_exists", c)
		}
	}
	s.rec.add("idempotency", "after_signed_same_id=%v same_result=%v status=%v different_hash=%s different_kind=%s",
		same.GetId() == s.hashSig.GetId(), proto.Equal(same.GetResult(), s.hashSig.GetResult()), same.GetStatus(), codes[0], codes[1])
}

func (s *walletSuite) list(t *testing.T) {
	ctx := context.Background()
	listPage := func(size int32, token string) *walletv1.ListSignaturesResponse {
		t.Helper()
		res, err := s.tc.client.ListSignatures(ctx, connect.NewRequest(&walletv1.ListSignaturesRequest{
			WalletId: s.walletID, PageSize: size, PageToken: token,
		}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg
	}
	// Oldest first, only this wallet's: the other backend's wallet has
	// signatures in the same database by the time the second backend runs.
	all := listPage(100, "")
	var got []string
	for _, sg := range all.GetSignatures() {
		got = append(got, sg.GetId())
	}
	want := []string{s.hashSig.GetId(), s.msgSig.GetId()}
	if !slices.Equal(got, want) {
		t.Errorf("ListSignatures(wallet) = %v, want %v", got, want)
	}
	if len(all.GetSignatures()) == 2 && !proto.Equal(all.GetSignatures()[0], s.hashSig) {
		t.Errorf("listed signature differs from GetSignature's:\n%v\n%v", all.GetSignatures()[0], s.hashSig)
	}
	// Paged one at a time.
	var sizes []int
	var paged []string
	token := ""
	for range 4 {
		p := listPage(1, token)
		sizes = append(sizes, len(p.GetSignatures()))
		for _, sg := range p.GetSignatures() {
			paged = append(paged, sg.GetId())
		}
		if token = p.GetNextPageToken(); token == "" {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged ListSignatures = %v, want %v", paged, want)
	}
	s.rec.add("list", "count=%d order_ok=%v next_page_token_empty=%v pages_of_1=%v paged_ok=%v",
		len(got), slices.Equal(got, want), all.GetNextPageToken() == "", sizes, slices.Equal(paged, want))
}

func (s *walletSuite) errorCodes(t *testing.T) {
	ctx := context.Background()
	c := s.tc.client
	calls := []struct {
		name string
		want connect.Code
		call func() error
	}{
		{"get_unknown_signature", connect.CodeNotFound, func() error {
			_, err := c.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: ids.New(ids.Signature)}))
			return err
		}},
		{"get_malformed_signature_id", connect.CodeInvalidArgument, func() error {
			_, err := c.GetSignature(ctx, connect.NewRequest(&walletv1.GetSignatureRequest{Id: s.walletID}))
			return err
		}},
		{"sign_with_unknown_wallet", connect.CodeNotFound, func() error {
			_, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: ids.New(ids.Wallet), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: make([]byte, 32)}}))
			return err
		}},
		{"sign_short_hash", connect.CodeInvalidArgument, func() error {
			_, err := c.CreateSignature(ctx, connect.NewRequest(&walletv1.CreateSignatureRequest{
				WalletId: s.walletID, Payload: &walletv1.CreateSignatureRequest_Hash{Hash: make([]byte, 31)}}))
			return err
		}},
	}
	var got []string
	for _, call := range calls {
		code := codeOf(call.call())
		if code != call.want.String() {
			t.Errorf("%s: %s, want %s", call.name, code, call.want)
		}
		got = append(got, call.name+"="+code)
	}
	s.rec.add("error_codes", "%s", strings.Join(got, " "))
}

// codeOf is the Connect code of err, "ok" for nil.
func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code().String()
	}
	return "not a connect error: " + err.Error()
}
