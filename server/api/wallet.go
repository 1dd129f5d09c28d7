// Package api implements WalletService, the API applications call on the
// coordinator's API port. It records wallets and signature requests with
// the work a backend must do; the MPC orchestrator and the HSM job queue
// finish them.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	"github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1/walletv1connect"
	"github.com/sigil-wallet/sigil/internal/ids"
	"github.com/sigil-wallet/sigil/internal/reqsig"
	"github.com/sigil-wallet/sigil/server/auth"
	"github.com/sigil-wallet/sigil/server/store"
)

// Scopes maps each WalletService procedure to the token scope it needs.
var Scopes = map[string]auth.Scope{
	walletv1connect.WalletServiceCreateWalletProcedure:    auth.ScopeWalletsWrite,
	walletv1connect.WalletServiceGetWalletProcedure:       auth.ScopeWalletsRead,
	walletv1connect.WalletServiceListWalletsProcedure:     auth.ScopeWalletsRead,
	walletv1connect.WalletServiceCreateSignatureProcedure: auth.ScopeSignaturesWrite,
	walletv1connect.WalletServiceGetSignatureProcedure:    auth.ScopeWalletsRead,
	walletv1connect.WalletServiceListSignaturesProcedure:  auth.ScopeWalletsRead,
}

// MPCGroup is the signer group new MPC wallets are created on.
type MPCGroup struct {
	Threshold int
	Signers   []string
}

// Backends says which key backends this coordinator offers.
type Backends struct {
	// MPC is the signer group for MPC wallets; nil when MPC is off.
	MPC *MPCGroup
	// HSM is true when HSM drivers serve this coordinator.
	HSM bool
	// Default is used when a request leaves the backend unspecified.
	Default store.Backend
}

// Store is what the wallet API needs of storage.
type Store interface {
	store.Wallets
	store.Signatures
	store.Backups
	store.KeyPool
}

// Notifier is told about new work, so the backend picks it up at once
// rather than at its next poll. Nil-safe: see notify.
type Notifier interface {
	NotifyWork()
}

// WalletServer implements walletv1connect.WalletServiceHandler.
type WalletServer struct {
	store    Store
	backends Backends
	notifier Notifier
	waiter   Waiter
	logger   *slog.Logger
	requests reqsig.Policy
	mpcLimit *limiter // nil: no limit (see LimitMPCWallets)
}

var _ walletv1connect.WalletServiceHandler = (*WalletServer)(nil)

// NewWalletServer returns the WalletService handler.
func NewWalletServer(s Store, b Backends, n Notifier, logger *slog.Logger, opts ...Option) *WalletServer {
	ws := &WalletServer{store: s, backends: b, notifier: n, logger: logger}
	for _, o := range opts {
		o(ws)
	}
	return ws
}

func (s *WalletServer) notify() {
	if s.notifier != nil {
		s.notifier.NotifyWork()
	}
}

func (s *WalletServer) resolveBackend(b walletv1.Backend) (store.Backend, error) {
	switch b {
	case walletv1.Backend_BACKEND_UNSPECIFIED:
		if s.backends.Default == "" {
			return "", fmt.Errorf("%w: this server has no key backend configured (start it with --mpc-signers or --hsm)", ErrBackendUnavailable)
		}
		return s.backends.Default, nil
	case walletv1.Backend_BACKEND_MPC:
		if s.backends.MPC == nil {
			return "", fmt.Errorf("%w: this server has no MPC signer group configured (--mpc-signers)", ErrBackendUnavailable)
		}
		return store.BackendMPC, nil
	case walletv1.Backend_BACKEND_HSM:
		if !s.backends.HSM {
			return "", fmt.Errorf("%w: this server does not serve HSM drivers (--hsm)", ErrBackendUnavailable)
		}
		return store.BackendHSM, nil
	default:
		return "", fmt.Errorf("%w: unknown backend %v", ErrBackendUnavailable, b)
	}
}

// CreateWallet records a wallet and its key generation work.
func (s *WalletServer) CreateWallet(ctx context.Context, req *connect.Request[walletv1.CreateWalletRequest]) (*connect.Response[walletv1.CreateWalletResponse], error) {
	m := req.Msg
	if m.GetParentWalletId() != "" || m.GetDerivationPath() != "" {
		pw, err := s.createChild(ctx, m)
		if err != nil {
			return nil, s.toConnect(ctx, err)
		}
		return connect.NewResponse(&walletv1.CreateWalletResponse{Wallet: pw}), nil
	}
	backend, err := s.resolveBackend(m.GetBackend())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	scheme, err := schemeFromProto(m.GetKeyScheme())
	if err == nil {
		err = checkScheme(scheme, backend)
	}
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	if backend == store.BackendMPC {
		if err := s.takeMPCWallet(ctx); err != nil {
			return nil, err
		}
	}
	w := &store.Wallet{
		ID:         ids.New(ids.Wallet),
		Owner:      owner(ctx),
		ExternalID: m.GetExternalId(),
		Name:       m.GetName(),
		Backend:    backend,
		KeyScheme:  scheme,
		Status:     store.WalletCreating,
	}
	var work store.Work
	switch backend {
	case store.BackendMPC:
		w.Threshold, w.Signers = s.backends.MPC.Threshold, s.backends.MPC.Signers
		work.Ceremony = &store.Ceremony{
			ID: ids.New(ids.Ceremony), Kind: store.CeremonyKeygen, KeyScheme: w.KeyScheme, WalletID: w.ID, State: store.CeremonyWaiting,
			Threshold: w.Threshold, GroupSigners: w.Signers,
		}
	case store.BackendHSM:
		work.Job = &store.Job{ID: ids.New(ids.Job), Kind: store.JobKeygen, WalletID: w.ID, State: store.JobQueued}
	}
	w.RequestHash = fingerprint("wallet", string(backend), w.KeyScheme, w.Name)
	got, created, err := s.createWallet(ctx, w, work)
	if backend == store.BackendMPC && (err != nil || !created) {
		s.refundMPCWallet(ctx)
	}
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	if created {
		s.notify()
		s.logger.InfoContext(ctx, "wallet created", "wallet", got.ID, "backend", got.Backend)
	} else if err := checkReplay(ctx, "wallet", got.ID, got.ExternalID); err != nil {
		return nil, err
	}
	pw, err := walletToProto(got)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return connect.NewResponse(&walletv1.CreateWalletResponse{Wallet: pw}), nil
}

// createWallet records w: an MPC wallet takes a key from the key pool when
// one is ready (active at once), else it waits for its key generation.
func (s *WalletServer) createWallet(ctx context.Context, w *store.Wallet, work store.Work) (*store.Wallet, bool, error) {
	if w.Backend == store.BackendMPC {
		got, created, err := s.store.AssignPooledWallet(ctx, w)
		if !errors.Is(err, store.ErrNotFound) {
			return got, created, err
		}
	}
	return s.store.CreateWallet(ctx, w, work)
}

// GetWallet returns one wallet, after waiting up to the request's wait
// for a creating wallet to settle.
func (s *WalletServer) GetWallet(ctx context.Context, req *connect.Request[walletv1.GetWalletRequest]) (*connect.Response[walletv1.GetWalletResponse], error) {
	wait, err := waitDuration(req.Msg.GetWait())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	id := req.Msg.GetId()
	w, err := awaitSettled(ctx, s.waiter, id, wait, func(ctx context.Context) (*store.Wallet, error) { return s.store.GetWallet(ctx, id) }, walletSettled)
	if err != nil {
		return nil, s.toConnect(ctx, fmt.Errorf("wallet %s: %w", req.Msg.GetId(), err))
	}
	pw, err := walletToProto(w)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	if err := s.attachBackups(ctx, []*store.Wallet{w}, []*walletv1.Wallet{pw}); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return connect.NewResponse(&walletv1.GetWalletResponse{Wallet: pw}), nil
}

// ListWallets returns one page of wallets.
func (s *WalletServer) ListWallets(ctx context.Context, req *connect.Request[walletv1.ListWalletsRequest]) (*connect.Response[walletv1.ListWalletsResponse], error) {
	m := req.Msg
	filter := store.WalletFilter{Status: walletStatusFromProto(m.GetStatus()), ParentWalletID: m.GetParentWalletId()}
	page, err := decodePage(m.GetPageToken(), m.GetPageSize(), "wallets", string(filter.Status)+"/"+filter.ParentWalletID)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	rows, err := s.store.ListWallets(ctx, filter, page)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	out := &walletv1.ListWalletsResponse{}
	for _, w := range rows {
		pw, err := walletToProto(w)
		if err != nil {
			return nil, s.toConnect(ctx, err)
		}
		out.Wallets = append(out.Wallets, pw)
	}
	if err := s.attachBackups(ctx, rows, out.Wallets); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	if len(rows) == page.Limit {
		out.NextPageToken = encodePage(rows[len(rows)-1].Seq, "wallets", string(filter.Status)+"/"+filter.ParentWalletID)
	}
	return connect.NewResponse(out), nil
}

// CreateSignature records a signature request and its signing work.
func (s *WalletServer) CreateSignature(ctx context.Context, req *connect.Request[walletv1.CreateSignatureRequest]) (*connect.Response[walletv1.CreateSignatureResponse], error) {
	m := req.Msg
	sg := &store.Signature{
		ID:         ids.New(ids.Signature),
		Owner:      owner(ctx),
		ExternalID: m.GetExternalId(),
		WalletID:   m.GetWalletId(),
		Status:     store.SignaturePending,
	}
	if err := s.requireSigned(m); err != nil {
		return nil, err
	}
	w, err := s.store.GetWallet(ctx, sg.WalletID)
	if err != nil {
		return nil, s.toConnect(ctx, fmt.Errorf("wallet %s: %w", sg.WalletID, err))
	}
	// The payload must suit the wallet's scheme; the validation
	// interceptor already requires exactly one.
	if err := signaturePayload(w, m, sg); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	sg.RequestHash = fingerprint("signature", sg.WalletID, string(sg.Kind), string(sg.Hash), sg.Message, string(sg.RawMessage))
	if err := s.checkRequestSignature(m, sg); err != nil {
		return nil, err
	}
	var work store.Work
	switch w.Backend {
	case store.BackendMPC:
		work.Ceremony = &store.Ceremony{
			ID: ids.New(ids.Ceremony), Kind: store.CeremonySign, KeyScheme: w.KeyScheme, WalletID: w.ID, SignatureID: sg.ID,
			State: store.CeremonyWaiting, Threshold: w.Threshold, GroupSigners: w.Signers,
		}
	case store.BackendHSM:
		work.Job = &store.Job{ID: ids.New(ids.Job), Kind: store.JobSign, WalletID: w.ID, SignatureID: sg.ID, State: store.JobQueued}
	default:
		return nil, s.toConnect(ctx, fmt.Errorf("wallet %s has unknown backend %q", w.ID, w.Backend))
	}
	got, created, err := s.store.CreateSignature(ctx, sg, work)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	if created {
		s.notify()
		s.logger.InfoContext(ctx, "signature requested", "signature", got.ID, "wallet", got.WalletID, "kind", got.Kind)
	} else if err := checkReplay(ctx, "signature", got.ID, got.ExternalID); err != nil {
		return nil, err
	}
	return connect.NewResponse(&walletv1.CreateSignatureResponse{Signature: signatureToProto(got)}), nil
}

// GetSignature returns one signature request, after waiting up to the
// request's wait for a pending one to settle.
func (s *WalletServer) GetSignature(ctx context.Context, req *connect.Request[walletv1.GetSignatureRequest]) (*connect.Response[walletv1.GetSignatureResponse], error) {
	wait, err := waitDuration(req.Msg.GetWait())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	id := req.Msg.GetId()
	sg, err := awaitSettled(ctx, s.waiter, id, wait, func(ctx context.Context) (*store.Signature, error) { return s.store.GetSignature(ctx, id) }, signatureSettled)
	if err != nil {
		return nil, s.toConnect(ctx, fmt.Errorf("signature %s: %w", req.Msg.GetId(), err))
	}
	return connect.NewResponse(&walletv1.GetSignatureResponse{Signature: signatureToProto(sg)}), nil
}

// ListSignatures returns one page of signature requests.
func (s *WalletServer) ListSignatures(ctx context.Context, req *connect.Request[walletv1.ListSignaturesRequest]) (*connect.Response[walletv1.ListSignaturesResponse], error) {
	m := req.Msg
	filter := store.SignatureFilter{WalletID: m.GetWalletId()}
	page, err := decodePage(m.GetPageToken(), m.GetPageSize(), "signatures", filter.WalletID)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	rows, err := s.store.ListSignatures(ctx, filter, page)
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	out := &walletv1.ListSignaturesResponse{}
	for _, sg := range rows {
		out.Signatures = append(out.Signatures, signatureToProto(sg))
	}
	if len(rows) == page.Limit {
		out.NextPageToken = encodePage(rows[len(rows)-1].Seq, "signatures", filter.WalletID)
	}
	return connect.NewResponse(out), nil
}

// fingerprint hashes the fields that define a request, length-prefixed so
// no two field lists collide. Same fingerprint = same request for
// idempotency.
func fingerprint(fields ...string) []byte {
	h := sha256.New()
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}
