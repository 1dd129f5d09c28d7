package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	walletv1 "github.com/sigil-wallet/sigil/gen/go/sigil/wallet/v1"
	sigil "github.com/sigil-wallet/sigil/sdk/go"
	"github.com/sigil-wallet/sigil/server"
)

// defaultAPIURL is where `sigil server` and `sigil dev` listen by default.
const defaultAPIURL = "http://" + server.DefaultAPIAddr

// apiFlags are the flags of the commands that call the API port.
type apiFlags struct {
	url, token, dataDir string
	json                bool
	// requestKey is the request key file signing CreateSignature (sign's
	// --request-key); empty uses dev.json's request_key_file, if any.
	requestKey string
}

func (a *apiFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&a.url, "api-url", "", "URL of the API port (default "+defaultAPIURL+", or the api_url of <data-dir>/dev.json when the token comes from there)")
	fs.StringVar(&a.token, "token", "", "API token (default: the token of <data-dir>/dev.json, written by sigil dev)")
	fs.StringVar(&a.dataDir, "data-dir", server.DefaultDataDir, "the folder where \"sigil dev\" keeps its data; its dev.json gives the token when --token is empty")
	fs.BoolVar(&a.json, "json", false, "print the result as protobuf JSON")
}

// apiDevFile is the part of <data-dir>/dev.json, written by `sigil dev`,
// that client commands read.
type apiDevFile struct {
	APIURL         string `json:"api_url"`
	Token          string `json:"token"`
	RequestKeyFile string `json:"request_key_file"`
}

// client builds the SDK client: flags, then SIGIL_* (through parse), then
// dev.json for a missing token.
func (a *apiFlags) client() (*sigil.Client, error) {
	url, token, keyFile := a.url, a.token, a.requestKey
	if token == "" {
		path := filepath.Join(a.dataDir, "dev.json")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no API token: give --token or set SIGIL_TOKEN (make one with `sigil token create`), or run next to `sigil dev`, which writes %s", errUsage, path)
		}
		if err != nil {
			return nil, err
		}
		var dev apiDevFile
		if err := json.Unmarshal(b, &dev); err != nil || dev.Token == "" {
			return nil, fmt.Errorf("%s: not the dev.json of `sigil dev` (want {\"api_url\": ..., \"token\": ...}): %v", path, err)
		}
		token = dev.Token
		if keyFile == "" {
			keyFile = dev.RequestKeyFile
		}
		if url == "" {
			url = dev.APIURL
		}
	}
	if url == "" {
		url = defaultAPIURL
	}
	opts := []sigil.Option{sigil.WithToken(token)}
	if keyFile != "" {
		k, err := sigil.LoadRequestKey(keyFile)
		if err != nil {
			return nil, fmt.Errorf("--request-key: %w", err)
		}
		opts = append(opts, sigil.WithRequestKey(k))
	}
	c, err := sigil.New(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: --api-url: %w", errUsage, err)
	}
	return c, nil
}

// apiError makes an SDK error readable on a terminal: the server's message,
// its Connect code, and a hint for the mistakes people make. errors.Is and
// errors.As still see the original.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return &cliAPIError{msg: strings.TrimPrefix(err.Error(), "sigil: "), err: err}
	}
	msg := fmt.Sprintf("%s (code %s)", strings.TrimPrefix(ce.Message(), "sigil: "), ce.Code())
	switch ce.Code() {
	case connect.CodeUnauthenticated:
		msg += "; check --token or SIGIL_TOKEN"
	case connect.CodePermissionDenied:
		msg += "; the token lacks the scope this needs (see `sigil token create --help`)"
	}
	return &cliAPIError{msg: msg, err: err}
}

type cliAPIError struct {
	msg string
	err error
}

func (e *cliAPIError) Error() string { return e.msg }
func (e *cliAPIError) Unwrap() error { return e.err }

// printProto writes m as multiline protobuf JSON.
func printProto(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printWallet writes a wallet as a short aligned block.
func printWallet(w io.Writer, wal *walletv1.Wallet) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("Wallet", wal.GetId())
	row("Status", sigil.WalletStatusName(wal.GetStatus()))
	row("Failure", wal.GetFailureReason())
	row("Backend", sigil.BackendName(wal.GetBackend()))
	if g := wal.GetMpcGroup(); g != nil {
		row("MPC group", fmt.Sprintf("%d-of-%d: %s", g.GetThreshold(), len(g.GetSigners()), strings.Join(g.GetSigners(), ", ")))
	}
	if wal.GetKeyScheme() != walletv1.KeyScheme_KEY_SCHEME_UNSPECIFIED {
		row("Key scheme", keySchemeName(wal.GetKeyScheme()))
	}
	row("Parent", wal.GetParentWalletId())
	row("Path", wal.GetDerivationPath())
	row("Name", wal.GetName())
	row("External ID", wal.GetExternalId())
	if pk := wal.GetPublicKey(); len(pk) > 0 {
		row("Public key", hex.EncodeToString(pk))
	}
	row("Ethereum", wal.GetAddresses().GetEthereum())
	row("Bitcoin", wal.GetAddresses().GetBitcoinP2Wpkh())
	row("Taproot", wal.GetAddresses().GetBitcoinP2Tr())
	row("Solana", wal.GetAddresses().GetSolana())
	if t := wal.GetCreateTime(); t != nil {
		row("Created", t.AsTime().Local().Format(time.RFC3339))
	}
	return tw.Flush()
}

// waitProgress shows a wait on stderr: one line rewritten in place on a
// terminal, else a line every few seconds (logs and CI keep them all).
type waitProgress struct {
	w       io.Writer
	tty     bool
	what    string
	shown   bool
	lastOut time.Duration
}

// progressEvery is how often a non-terminal stderr gets a line.
const progressEvery = 5 * time.Second

func newWaitProgress(env *cliEnv, what string) *waitProgress {
	return &waitProgress{w: env.stderr, tty: isTerminal(env.stderr), what: what}
}

func (p *waitProgress) update(status string, elapsed time.Duration) {
	secs := elapsed.Round(time.Second)
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r%s: %s, %s ", p.what, status, secs)
	case !p.shown || elapsed-p.lastOut >= progressEvery:
		fmt.Fprintf(p.w, "%s: %s, %s\n", p.what, status, secs)
		p.lastOut = elapsed
	default:
		return
	}
	p.shown = true
}

// finish ends the progress line, if one was shown.
func (p *waitProgress) finish(status string, elapsed time.Duration) {
	if !p.shown {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s: %s after %.1fs\033[K\n", p.what, status, elapsed.Seconds())
		return
	}
	fmt.Fprintf(p.w, "%s: %s after %.1fs\n", p.what, status, elapsed.Seconds())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func walletCreateCommand() *command {
	return &command{
		name:    "wallet create",
		summary: "create a wallet and wait until its key exists",
		usage: `Creates a wallet and, unless --no-wait, waits until its key generation ends,
showing progress on stderr (an MPC key generation takes tens of seconds), then
prints the wallet: id, status, backend, public key and addresses. Exits 1 if
the key generation failed. Next to "sigil dev" no flag is needed: the URL and
token come from <data-dir>/dev.json. --scheme picks the key: ecdsa (secp256k1,
Ethereum and SegWit addresses; the default), schnorr (BIP-340, a Taproot bc1p
address; MPC only) or ed25519 (a Solana address; MPC only). --parent with
--path makes a BIP-32 child of an MPC secp256k1 wallet at once. Examples:

  sigil wallet create --name treasury --backend hsm
  sigil wallet create --name vault --scheme schnorr
  sigil wallet create --parent wal_01j9z3k4m5n6p7q8r9s0t1v2w3 --path m/0/1`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var api apiFlags
			var backend, scheme, parent, path, name, externalID string
			var noWait bool
			api.add(fs)
			fs.StringVar(&backend, "backend", "", "where the key lives: mpc or hsm (default: the server's default)")
			fs.StringVar(&scheme, "scheme", "", "key scheme: ecdsa, schnorr (Taproot) or ed25519 (default ecdsa, or the parent's)")
			fs.StringVar(&parent, "parent", "", "make a BIP-32 child wallet of this wallet (wal_...), with --path")
			fs.StringVar(&path, "path", "", "non-hardened BIP-32 path of the child wallet below --parent, e.g. m/0/1")
			fs.StringVar(&name, "name", "", "a label for the wallet, up to 200 characters")
			fs.StringVar(&externalID, "external-id", "", "idempotency key: repeating the command with it returns the same wallet")
			fs.BoolVar(&noWait, "no-wait", false, "print the wallet as created (status CREATING) without waiting for its key")
			return func() error {
				b, err := sigil.ParseBackend(backend)
				if err != nil {
					return fmt.Errorf("%w: --backend %q: want mpc or hsm", errUsage, backend)
				}
				ks, err := sigil.ParseKeyScheme(scheme)
				if err != nil {
					return fmt.Errorf("%w: --scheme %q: want ecdsa, schnorr or ed25519", errUsage, scheme)
				}
				if (parent == "") != (path == "") {
					return fmt.Errorf("%w: --parent and --path go together", errUsage)
				}
				client, err := api.client()
				if err != nil {
					return err
				}
				w, err := client.CreateWallet(env.ctx, sigil.CreateWalletOptions{ExternalID: externalID, Name: name, Backend: b,
					KeyScheme: ks, ParentWalletID: parent, DerivationPath: path})
				if err != nil {
					return apiError(err)
				}
				if !noWait && w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_CREATING {
					w, err = waitForWallet(env, client, w)
				}
				if w != nil {
					if perr := api.print(env, w, func(o io.Writer) error { return printWallet(o, w) }); perr != nil {
						return perr
					}
				}
				if err == nil && w.GetStatus() == walletv1.WalletStatus_WALLET_STATUS_FAILED {
					err = &sigil.WalletFailedError{Wallet: w}
				}
				return apiError(err)
			}
		},
	}
}

// waitForWallet waits for a CREATING wallet with progress on stderr. A
// wallet that FAILED is returned with its error.
func waitForWallet(env *cliEnv, client *sigil.Client, w *walletv1.Wallet) (*walletv1.Wallet, error) {
	id := w.GetId()
	p := newWaitProgress(env, fmt.Sprintf("generating the %s key of %s", sigil.BackendName(w.GetBackend()), id))
	start := time.Now()
	got, err := client.WaitWallet(env.ctx, id, sigil.WaitOptions{Progress: func(w *walletv1.Wallet, elapsed time.Duration) {
		p.update(strings.ToLower(sigil.WalletStatusName(w.GetStatus())), elapsed)
	}})
	switch {
	case err == nil || got != nil:
		p.finish(strings.ToLower(sigil.WalletStatusName(got.GetStatus())), time.Since(start))
	case errors.Is(err, context.Canceled):
		p.finish("stopped waiting", time.Since(start))
		fmt.Fprintf(env.stderr, "The key generation goes on; check it with: sigil wallet get --id %s\n", id)
	default:
		p.finish("error", time.Since(start))
	}
	return got, err
}

// print writes m as JSON with --json, else with human.
func (a *apiFlags) print(env *cliEnv, m proto.Message, human func(io.Writer) error) error {
	if a.json {
		return printProto(env.stdout, m)
	}
	return human(env.stdout)
}

func walletGetCommand() *command {
	return &command{
		name:    "wallet get",
		summary: "show one wallet",
		usage: `Prints one wallet: status, backend, public key and addresses. Example:

  sigil wallet get --id wal_01j9z3k4m5n6p7q8r9s0t1v2w3 --json`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var api apiFlags
			var id string
			api.add(fs)
			fs.StringVar(&id, "id", "", "the wallet's id (wal_...)")
			return func() error {
				if id == "" {
					return fmt.Errorf("%w: --id is required", errUsage)
				}
				client, err := api.client()
				if err != nil {
					return err
				}
				w, err := client.GetWallet(env.ctx, id)
				if err != nil {
					return apiError(err)
				}
				return api.print(env, w, func(o io.Writer) error { return printWallet(o, w) })
			}
		},
	}
}

func walletListCommand() *command {
	return &command{
		name:    "wallet list",
		summary: "list wallets, oldest first",
		usage: `Lists every wallet, oldest first, as a table (or, with --json, as a
ListWalletsResponse holding all of them). Example:

  sigil wallet list --status active`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var api apiFlags
			var status string
			api.add(fs)
			fs.StringVar(&status, "status", "", "only wallets in this status: creating, active or failed")
			return func() error {
				st := walletv1.WalletStatus_WALLET_STATUS_UNSPECIFIED
				if status != "" {
					v, ok := walletv1.WalletStatus_value["WALLET_STATUS_"+strings.ToUpper(status)]
					if !ok || v == 0 {
						return fmt.Errorf("%w: --status %q: want creating, active or failed", errUsage, status)
					}
					st = walletv1.WalletStatus(v)
				}
				client, err := api.client()
				if err != nil {
					return err
				}
				var all []*walletv1.Wallet
				for w, err := range client.Wallets(env.ctx, sigil.ListOptions{Status: st, PageSize: 1000}) {
					if err != nil {
						return apiError(err)
					}
					all = append(all, w)
				}
				if api.json {
					return printProto(env.stdout, &walletv1.ListWalletsResponse{Wallets: all})
				}
				if len(all) == 0 {
					fmt.Fprintln(env.stderr, "no wallets")
					return nil
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tBACKEND\tETHEREUM\tNAME")
				for _, w := range all {
					eth := w.GetAddresses().GetEthereum()
					if eth == "" {
						eth = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.GetId(), sigil.WalletStatusName(w.GetStatus()),
						sigil.BackendName(w.GetBackend()), eth, w.GetName())
				}
				return tw.Flush()
			}
		},
	}
}

// keySchemeName is the short name of a key scheme, as --scheme takes it.
func keySchemeName(k walletv1.KeyScheme) string {
	switch k {
	case walletv1.KeyScheme_KEY_SCHEME_SCHNORR_SECP256K1:
		return "schnorr (BIP-340, Taproot)"
	case walletv1.KeyScheme_KEY_SCHEME_ED25519:
		return "ed25519"
	case walletv1.KeyScheme_KEY_SCHEME_ECDSA_SECP256K1:
		return "ecdsa (secp256k1)"
	}
	return k.String()
}
