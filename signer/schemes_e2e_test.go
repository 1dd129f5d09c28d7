package signer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/taurusgroup/multi-party-sig/pkg/party"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/internal/cluster"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/signer"
	"github.com/sigil-wallet/sigil/signer/backup"
	"github.com/sigil-wallet/sigil/signer/mpc"
	"github.com/sigil-wallet/sigil/signer/mpc/mpctest"
)

func (tc *testCluster) createWallet(t *testing.T, req *walletv1.CreateWalletRequest) *walletv1.Wallet {
	t.Helper()
	res, err := tc.client.CreateWallet(context.Background(), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	w := tc.waitWallet(t, res.Msg.GetWallet().GetId(), time.Minute)
	if w.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE {
		t.Fatalf("wallet %v: %s", w.GetStatus(), w.GetFailureReason())
	}
	return w
}

// taprootOutput is the BIP-341 output key of an x-only internal key with
// no script tree, computed by btcd.
func taprootOutput(t *testing.T, internal []byte) *btcutil.AddressTaproot {
	t.Helper()
	p, err := schnorr.ParsePubKey(internal)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := btcutil.NewAddressTaproot(schnorr.SerializePubKey(txscript.ComputeTaprootKeyNoScript(p)), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// spendKeyPath signs a transaction spending a P2TR output of w through
// Sigil and runs it through btcd's script engine with the standard verify
// flags, and checks the signature with btcd's BIP-340 verifier.
func spendKeyPath(t *testing.T, tc *testCluster, w *walletv1.Wallet) {
	t.Helper()
	addr := taprootOutput(t, w.GetPublicKey())
	if got := w.GetAddresses().GetBitcoinP2Tr(); got != addr.EncodeAddress() {
		t.Fatalf("P2TR address %s, btcd computes %s", got, addr.EncodeAddress())
	}
	pkScript, err := txscript.PayToAddrScript(addr)
	if err != nil {
		t.Fatal(err)
	}
	const amount = 100_000
	prev := wire.NewOutPoint(&chainhash.Hash{1, 2, 3}, 0)
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(prev, nil, nil))
	tx.AddTxOut(wire.NewTxOut(amount-500, pkScript))
	fetcher := txscript.NewCannedPrevOutputFetcher(pkScript, amount)
	hashes := txscript.NewTxSigHashes(tx, fetcher)
	sighash, err := txscript.CalcTaprootSignatureHash(hashes, txscript.SigHashDefault, tx, 0, fetcher)
	if err != nil {
		t.Fatal(err)
	}
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: sighash}}, time.Minute)
	if s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
		t.Fatalf("signature %v: %s", s.GetStatus(), s.GetFailureReason())
	}
	res := s.GetResult()
	if len(res.GetSchnorr()) != 64 || len(res.GetR()) != 0 || len(res.GetDer()) != 0 || len(res.GetEthereum()) != 0 {
		t.Fatalf("result = %v, want only the 64-byte schnorr field", res)
	}
	sig, err := schnorr.ParseSignature(res.GetSchnorr())
	if err != nil {
		t.Fatal(err)
	}
	outKey, _ := schnorr.ParsePubKey(addr.WitnessProgram())
	if !sig.Verify(sighash, outKey) {
		t.Fatal("btcd's BIP-340 verifier rejects the signature for the output key")
	}
	tx.TxIn[0].Witness = wire.TxWitness{res.GetSchnorr()}
	vm, err := txscript.NewEngine(pkScript, tx, 0, txscript.StandardVerifyFlags, nil, hashes, amount, fetcher)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.Execute(); err != nil {
		t.Fatalf("btcd's script engine refuses the key-path spend: %v", err)
	}
}

// TestSchnorrTaprootE2E: a FROST Taproot wallet through the coordinator
// and three signers (2-of-3): x-only key and bc1p address, a key-path spend
// accepted by btcd's script engine, and a BIP-32 child wallet made at once
// whose key matches hdkeychain and whose spend verifies too.
func TestSchnorrTaprootE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("runs FROST ceremonies through a cluster; skipped with -short")
	}
	tc := startCluster(t, 3, 2, false)
	w := tc.createWallet(t, &walletv1.CreateWalletRequest{Name: "taproot", Backend: walletv1.Backend_BACKEND_MPC,
		KeyScheme: walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1})
	if w.GetKeyScheme() != walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1 || len(w.GetPublicKey()) != 32 ||
		!strings.HasPrefix(w.GetAddresses().GetBitcoinP2Tr(), "bc1p") || w.GetAddresses().GetEthereum() != "" {
		t.Fatalf("wallet = %v", w)
	}
	spendKeyPath(t, tc, w)

	// EIP-191 is for ECDSA wallets.
	_, err := tc.client.CreateSignature(context.Background(), connect.NewRequest(&walletv1.CreateSignatureRequest{
		WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Message{Message: "hi"}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "message") {
		t.Fatalf("EIP-191 to a Schnorr wallet: %v", err)
	}

	child := tc.createChild(t, w, "m/0/1")
	stored, err := tc.Server.Store().GetWallet(context.Background(), w.GetId())
	if err != nil {
		t.Fatal(err)
	}
	want := hdChild(t, append([]byte{2}, w.GetPublicKey()...), stored.ChainCode, 0, 1)
	if !bytes.Equal(child.GetPublicKey(), want[1:]) {
		t.Fatalf("child key %x, hdkeychain derives %x", child.GetPublicKey(), want)
	}
	spendKeyPath(t, tc, child)
}

// createChild makes a child wallet and checks it is active at once and
// listed under its parent.
func (tc *testCluster) createChild(t *testing.T, parent *walletv1.Wallet, path string) *walletv1.Wallet {
	t.Helper()
	res, err := tc.client.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{
		Name: "child", ParentWalletId: parent.GetId(), DerivationPath: path}))
	if err != nil {
		t.Fatal(err)
	}
	child := res.Msg.GetWallet()
	if child.GetStatus() != walletv1.WalletStatus_WALLET_STATUS_ACTIVE || child.GetParentWalletId() != parent.GetId() ||
		child.GetDerivationPath() != path || child.GetKeyScheme() != parent.GetKeyScheme() {
		t.Fatalf("child = %v", child)
	}
	// The child's id stands for its parent and path (the signers check it),
	// so a second child at the same path is refused.
	if want := ids.Child(parent.GetId(), path); child.GetId() != want {
		t.Fatalf("child id %s, want %s", child.GetId(), want)
	}
	_, err = tc.client.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{
		Name: "again", ParentWalletId: parent.GetId(), DerivationPath: path}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), child.GetId()) {
		t.Fatalf("a second child at %s: %v, want AlreadyExists naming %s", path, err, child.GetId())
	}
	list, err := tc.client.ListWallets(context.Background(), connect.NewRequest(&walletv1.ListWalletsRequest{ParentWalletId: parent.GetId()}))
	if err != nil {
		t.Fatal(err)
	}
	if ws := list.Msg.GetWallets(); len(ws) != 1 || ws[0].GetId() != child.GetId() {
		t.Fatalf("children of %s: %v", parent.GetId(), ws)
	}
	for _, bad := range []string{"m/0'/1", "m/1h", "0/1", "m/x", "m/2147483648"} {
		_, err := tc.client.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{
			ParentWalletId: parent.GetId(), DerivationPath: bad}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "derivation_path") {
			t.Fatalf("path %q: %v", bad, err)
		}
	}
	return child
}

// hdChild derives with btcutil's hdkeychain from a public key and chain code.
func hdChild(t *testing.T, pub, chain []byte, path ...uint32) []byte {
	t.Helper()
	k := hdkeychain.NewExtendedKey(chaincfg.MainNetParams.HDPublicKeyID[:], pub, chain, []byte{0, 0, 0, 0}, 0, 0, false)
	var err error
	for _, i := range path {
		if k, err = k.Derive(i); err != nil {
			t.Fatal(err)
		}
	}
	p, err := k.ECPubKey()
	if err != nil {
		t.Fatal(err)
	}
	return p.SerializeCompressed()
}

// TestEd25519E2E: a FROST-Ed25519 wallet through the coordinator and
// three signers: 32-byte key, Solana address (btcutil's base58), message
// bytes signed in RFC 8032 form that crypto/ed25519 accepts, and hash-style
// requests refused naming the field.
func TestEd25519E2E(t *testing.T) {
	if testing.Short() {
		t.Skip("runs FROST-Ed25519 ceremonies through a cluster; skipped with -short")
	}
	// Backups are on: they cover ECDSA shares only, so this wallet's shares
	// are left out (not stuck failing).
	recipients, _ := recoveryKeys(t, false)
	backups := filepath.Join(t.TempDir(), "backups")
	tc := startClusterOpts(t, cluster.Options{Signers: 3, Threshold: 2, Backup: backup.Config{RecipientsFile: recipients, Dir: backups}})
	w := tc.createWallet(t, &walletv1.CreateWalletRequest{Name: "solana", KeyScheme: walletv1.KeyScheme_KEY_SCHEME_ED25519})
	pub := w.GetPublicKey()
	if w.GetKeyScheme() != walletv1.KeyScheme_KEY_SCHEME_ED25519 || len(pub) != 32 || w.GetAddresses().GetSolana() != base58.Encode(pub) {
		t.Fatalf("wallet = %v", w)
	}
	msg := append([]byte("a Solana message \x00\xff"), bytes.Repeat([]byte{7}, 300)...)
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_RawMessage{RawMessage: msg}}, time.Minute)
	if s.GetStatus() != walletv1.SignatureStatus_SIGNATURE_STATUS_SIGNED {
		t.Fatalf("signature %v: %s", s.GetStatus(), s.GetFailureReason())
	}
	if s.GetKind() != walletv1.SignatureKind_SIGNATURE_KIND_RAW_MESSAGE || !bytes.Equal(s.GetRawMessage(), msg) || len(s.GetDigest()) != 0 {
		t.Fatalf("signature = %v", s)
	}
	if sig := s.GetResult().GetEd25519(); len(sig) != 64 || !ed25519.Verify(pub, msg, sig) || len(s.GetResult().GetR()) != 0 {
		t.Fatalf("crypto/ed25519 rejects %x", sig)
	}
	h := sha256.Sum256(msg)
	for field, req := range map[string]*walletv1.CreateSignatureRequest{
		"hash":    {WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: h[:]}},
		"message": {WalletId: w.GetId(), Payload: &walletv1.CreateSignatureRequest_Message{Message: "hi"}},
	} {
		_, err := tc.client.CreateSignature(context.Background(), connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), field+":") {
			t.Fatalf("%s to an Ed25519 wallet: %v", field, err)
		}
	}
	got, err := tc.client.GetWallet(context.Background(), connect.NewRequest(&walletv1.GetWalletRequest{Id: w.GetId()}))
	if err != nil || got.Msg.GetWallet().GetBackup() != nil {
		t.Fatalf("backup of an Ed25519 wallet = %v, %v; want none reported", got.Msg.GetWallet().GetBackup(), err)
	}
	if entries, _ := os.ReadDir(filepath.Join(backups, w.GetId())); len(entries) != 0 {
		t.Fatalf("Ed25519 shares in the backups: %v", entries)
	}
	_, err = tc.client.CreateWallet(context.Background(), connect.NewRequest(&walletv1.CreateWalletRequest{ParentWalletId: w.GetId(), DerivationPath: "m/0"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "parent_wallet_id") {
		t.Fatalf("child of an Ed25519 wallet: %v", err)
	}
}

// TestECDSAChildWalletE2E: a CMP wallet (fixture key, with the chain key
// its keygen agreed on) gets a child at once; the child's address and a
// signature by the parent's signers match hdkeychain's derivation.
func TestECDSAChildWalletE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a CMP signing ceremony through a cluster; skipped with -short")
	}
	tc := startCluster(t, 3, 2, true)
	ctx := context.Background()
	cfgs := mpctest.Configs(t, 3, 2)
	cfg := cfgs[party.ID("signer-1")]
	pub, err := mpc.PublicKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &store.Wallet{ID: ids.New(ids.Wallet), RequestHash: []byte{1}, Backend: store.BackendMPC, KeyScheme: store.KeySchemeSecp256k1,
		Status: store.WalletCreating, Threshold: 2, Signers: tc.Names}
	keygen := &store.Ceremony{ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, WalletID: w.ID, State: store.CeremonyWaiting,
		Threshold: 2, GroupSigners: tc.Names}
	st := tc.Server.Store()
	if _, _, err := st.CreateWallet(ctx, w, store.Work{Ceremony: keygen}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishCeremony(ctx, &store.CeremonyFinish{CeremonyID: keygen.ID, State: store.CeremonySucceeded,
		Wallet: &store.WalletOutcome{Status: store.WalletActive, PublicKey: pub, ChainCode: cfg.ChainKey}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range tc.Names {
		if err := tc.StartSigner(name); err != nil {
			t.Fatal(err)
		}
		if err := signer.ImportShare(ctx, tc.Signer(name), w.ID, keygen.ID, cfgs[party.ID(name)]); err != nil {
			t.Fatal(err)
		}
	}
	parent := tc.waitWallet(t, w.ID, time.Second)
	child := tc.createChild(t, parent, "m/3/7")
	if want := hdChild(t, pub, cfg.ChainKey, 3, 7); !bytes.Equal(child.GetPublicKey(), want) {
		t.Fatalf("child key %x, hdkeychain derives %x", child.GetPublicKey(), want)
	}
	s := tc.sign(t, &walletv1.CreateSignatureRequest{WalletId: child.GetId(), Payload: &walletv1.CreateSignatureRequest_Hash{Hash: hashOf(9)}}, time.Minute)
	verifySignature(t, child.GetPublicKey(), s)
}
