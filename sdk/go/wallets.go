package sigil

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
)

// CreateWalletOptions describe a new wallet; every field is optional.
type CreateWalletOptions struct {
	// ExternalID is an idempotency key (up to 128 of A-Za-z0-9._:-):
	// repeating the same request returns the same wallet; the same key with
	// a different request fails with connect.CodeAlreadyExists.
	ExternalID string
	// Name is a free-form label, up to 200 characters.
	Name string
	// Backend is where the key lives; BACKEND_UNSPECIFIED (the zero value)
	// means the server's default. ParseBackend reads "mpc" or "hsm".
	Backend walletv1.Backend
	// KeyScheme is the key's scheme; KEY_SCHEME_UNSPECIFIED (the zero
	// value) means ECDSA on secp256k1, or for a child its parent's scheme.
	// ParseKeyScheme reads "ecdsa", "schnorr" (Taproot) or "ed25519".
	KeyScheme walletv1.KeyScheme
	// ParentWalletID with DerivationPath (non-hardened, "m/0/1") makes a
	// BIP-32 child of an active MPC secp256k1 wallet, ACTIVE at once.
	ParentWalletID string
	DerivationPath string
}

// WaitOptions tune WaitWallet and CreateWalletAndWait. The zero value is
// ready to use.
type WaitOptions struct {
	// PollInterval is the first pause between two reads (default
	// DefaultPollInterval); it grows by half each read up to
	// MaxPollInterval (default DefaultMaxPollInterval).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// Timeout bounds the whole wait (default DefaultWalletWait; negative:
	// only the context's deadline). When it passes the wait fails with
	// connect.CodeDeadlineExceeded.
	Timeout time.Duration
	// Progress, when set, is called with each state read and the time since
	// the wait began, e.g. to show that a key generation is running.
	Progress func(w *walletv1.Wallet, elapsed time.Duration)
}

// ListOptions filter and page Wallets. The zero value lists every wallet.
type ListOptions struct {
	// Status keeps only wallets in this status; unspecified means all.
	Status walletv1.WalletStatus
	// ParentWalletID keeps only the child wallets of this wallet.
	ParentWalletID string
	// PageSize is how many wallets each call fetches, 1 to 1000; 0 means the
	// server's default (100).
	PageSize int32
	// PageToken starts from this page (a next_page_token seen before)
	// instead of the first.
	PageToken string
}

// ParseBackend reads a backend name, "mpc" or "hsm" (any case, also the
// enum names such as BACKEND_HSM); "" gives BACKEND_UNSPECIFIED, the
// server's default.
func ParseBackend(name string) (walletv1.Backend, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	switch s {
	case "":
		return walletv1.Backend_BACKEND_UNSPECIFIED, nil
	case "MPC", "HSM":
		s = "BACKEND_" + s
	}
	if v, ok := walletv1.Backend_value[s]; ok && v != 0 {
		return walletv1.Backend(v), nil
	}
	return 0, fmt.Errorf("sigil: unknown backend %q: want mpc or hsm", name)
}

// ParseKeyScheme reads a key scheme name: "ecdsa" (secp256k1), "schnorr"
// or "taproot" (BIP-340 on secp256k1), "ed25519" (any case, also the enum
// names such as KEY_SCHEME_ED25519); "" gives KEY_SCHEME_UNSPECIFIED.
func ParseKeyScheme(name string) (walletv1.KeyScheme, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	switch s {
	case "":
		return walletv1.KeyScheme_KEY_SCHEME_UNSPECIFIED, nil
	case "ECDSA", "SECP256K1", "ECDSA_SECP256K1":
		return walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1, nil
	case "SCHNORR", "TAPROOT", "BIP340", "SCHNORR_SECP256K1":
		return walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1, nil
	case "ED25519":
		return walletv1.KeyScheme_KEY_SCHEME_ED25519, nil
	}
	if v, ok := walletv1.KeyScheme_value[s]; ok && v != 0 {
		return walletv1.KeyScheme(v), nil
	}
	return 0, fmt.Errorf("sigil: unknown key scheme %q: want ecdsa, schnorr or ed25519", name)
}

// CreateWallet asks for a new wallet and returns it, in status CREATING
// while its key is generated. WaitWallet waits until it is ACTIVE; or use
// CreateWalletAndWait. Needs the wallets:write scope.
func (c *Client) CreateWallet(ctx context.Context, opts CreateWalletOptions) (*walletv1.Wallet, error) {
	res, err := c.service.CreateWallet(ctx, connect.NewRequest(&walletv1.CreateWalletRequest{
		ExternalId: opts.ExternalID, Name: opts.Name, Backend: opts.Backend, KeyScheme: opts.KeyScheme,
		ParentWalletId: opts.ParentWalletID, DerivationPath: opts.DerivationPath,
	}))
	if err != nil {
		return nil, err
	}
	return must(res.Msg.GetWallet(), "wallet")
}

// WaitWallet reads the wallet until its key generation ends and returns it
// ACTIVE. If it FAILED, WaitWallet returns the wallet and a
// *WalletFailedError carrying the reason. It stops with
// connect.CodeDeadlineExceeded after opts.Timeout (default 5 minutes) and
// with connect.CodeCanceled when ctx is canceled (errors.Is(err,
// context.Canceled) holds).
func (c *Client) WaitWallet(ctx context.Context, id string, opts WaitOptions) (*walletv1.Wallet, error) {
	return c.waitWallet(ctx, id, opts, time.Now())
}

func (c *Client) waitWallet(ctx context.Context, id string, opts WaitOptions, started time.Time) (*walletv1.Wallet, error) {
	var progress func(*walletv1.Wallet, time.Duration)
	if opts.Progress != nil {
		progress = func(w *walletv1.Wallet, _ time.Duration) { opts.Progress(w, time.Since(started)) }
	}
	w, err := poll(ctx, c.pollConfig(opts.PollInterval, opts.MaxPollInterval, opts.Timeout, DefaultWalletWait),
		func(ctx context.Context, hold time.Duration) (*walletv1.Wallet, error) {
			return c.getWallet(ctx, id, hold)
		},
		walletSettled,
		func(w *walletv1.Wallet, ok bool) string {
			if !ok {
				return "wallet " + id + " not read yet"
			}
			return fmt.Sprintf("wallet %s is still %s", id, WalletStatusName(w.GetStatus()))
		},
		progress)
	if err != nil {
		return nil, err
	}
	return settledWallet(w)
}

// CreateWalletAndWait creates a wallet and waits until it is ACTIVE, as
// CreateWallet followed by WaitWallet. wait.Progress is also called with the
// wallet as created.
func (c *Client) CreateWalletAndWait(ctx context.Context, opts CreateWalletOptions, wait WaitOptions) (*walletv1.Wallet, error) {
	started := time.Now()
	w, err := c.CreateWallet(ctx, opts)
	if err != nil {
		return nil, err
	}
	if wait.Progress != nil {
		wait.Progress(w, time.Since(started))
	}
	if walletSettled(w) {
		return settledWallet(w)
	}
	return c.waitWallet(ctx, w.GetId(), wait, started)
}

// GetWallet returns one wallet; connect.CodeNotFound (IsNotFound) if there
// is none with this id. Needs the wallets:read scope.
func (c *Client) GetWallet(ctx context.Context, id string) (*walletv1.Wallet, error) {
	return c.getWallet(ctx, id, 0)
}

// getWallet reads a wallet, asking the server to hold the call up to hold
// while it is creating.
func (c *Client) getWallet(ctx context.Context, id string, hold time.Duration) (*walletv1.Wallet, error) {
	res, err := c.service.GetWallet(ctx, connect.NewRequest(&walletv1.GetWalletRequest{Id: id, Wait: holdField(hold)}))
	if err != nil {
		return nil, err
	}
	return must(res.Msg.GetWallet(), "wallet")
}

// Wallets iterates over every wallet, oldest first, fetching pages as the
// loop goes. An error ends the iteration: it is yielded with a nil wallet.
// Needs the wallets:read scope.
//
//	for w, err := range client.Wallets(ctx, sigil.ListOptions{}) {
//		if err != nil { return err }
//		fmt.Println(w.GetId())
//	}
func (c *Client) Wallets(ctx context.Context, opts ListOptions) iter.Seq2[*walletv1.Wallet, error] {
	return pages(ctx, opts.PageToken, func(ctx context.Context, token string) ([]*walletv1.Wallet, string, error) {
		res, err := c.service.ListWallets(ctx, connect.NewRequest(&walletv1.ListWalletsRequest{
			PageSize: opts.PageSize, PageToken: token, Status: opts.Status, ParentWalletId: opts.ParentWalletID,
		}))
		if err != nil {
			return nil, "", err
		}
		return res.Msg.GetWallets(), res.Msg.GetNextPageToken(), nil
	})
}

// WalletStatusName is a wallet status without its enum prefix: CREATING,
// ACTIVE, FAILED.
func WalletStatusName(s walletv1.WalletStatus) string {
	return strings.TrimPrefix(s.String(), "WALLET_STATUS_")
}

// BackendName is a backend without its enum prefix: MPC, HSM.
func BackendName(b walletv1.Backend) string {
	return strings.TrimPrefix(b.String(), "BACKEND_")
}

func walletSettled(w *walletv1.Wallet) bool {
	s := w.GetStatus()
	return s != walletv1.WalletStatus_WALLET_STATUS_CREATING && s != walletv1.WalletStatus_WALLET_STATUS_UNSPECIFIED
}

func settledWallet(w *walletv1.Wallet) (*walletv1.Wallet, error) {
	if w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_FAILED {
		return w, &WalletFailedError{Wallet: w}
	}
	return w, nil
}

func (c *Client) pollConfig(interval, maxInterval, timeout, defaultTimeout time.Duration) pollConfig {
	return pollConfig{interval: interval, maxInterval: maxInterval, timeout: timeout, callTimeout: c.timeout}.withDefaults(defaultTimeout)
}

// holdField renders a hold as the requests' wait field (nil for none).
func holdField(hold time.Duration) *durationpb.Duration {
	if hold <= 0 {
		return nil
	}
	return durationpb.New(hold)
}

// must turns a response without its resource, a server bug, into an error
// rather than a nil that would panic later.
func must[T any](v *T, what string) (*T, error) {
	if v == nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("sigil: the server's response has no %s", what))
	}
	return v, nil
}

// pages yields every item of every page, starting at first.
func pages[T any](ctx context.Context, first string, fetch func(context.Context, string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		token := first
		seen := map[string]bool{}
		for {
			items, next, err := fetch(ctx, token)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			// A server repeating a token would loop forever; stop instead.
			if seen[next] {
				yield(zero, connect.NewError(connect.CodeInternal, fmt.Errorf("sigil: the server repeated page token %q", next)))
				return
			}
			seen[next] = true
			token = next
		}
	}
}
