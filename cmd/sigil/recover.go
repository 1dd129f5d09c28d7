package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/google/uuid"

	"github.com/sigil-wallet/sigil/internal/address"
	"github.com/sigil-wallet/sigil/signer/backup"
)

// keystoreScrypt is the scrypt cost of the Ethereum keystore `sigil
// recover` writes: go-ethereum's standard (what geth and wallets use).
// Tests lower it.
var keystoreScrypt = struct{ N, P int }{keystore.StandardScryptN, keystore.StandardScryptP}

// addBackupFlags declares the share backup flags of `sigil signer` and
// `sigil dev`, which take the same ones.
func addBackupFlags(fs *flag.FlagSet, c *backup.Config) {
	fs.StringVar(&c.RecipientsFile, "backup-recipients", "", "age recipients file (one a line: age1... X25519 or age1pq1... post-quantum hybrid, from age-keygen [-pq]); turns share backups on")
	fs.StringVar(&c.Dir, "backup-dir", "", "store share backups in this folder, as <dir>/<wallet id>/<signer>.age")
	fs.StringVar(&c.S3.Bucket, "backup-s3-bucket", "", "store share backups in this S3 bucket, as <prefix>/<wallet id>/<signer>.age (credentials from the AWS environment, ~/.aws, or an instance role)")
	fs.StringVar(&c.S3.Prefix, "backup-s3-prefix", "", "key prefix in --backup-s3-bucket")
	fs.StringVar(&c.S3.Endpoint, "backup-s3-endpoint", "", "URL of an S3-compatible server (MinIO, versitygw, Ceph...), addressed path-style; empty: AWS S3")
	fs.StringVar(&c.S3.Region, "backup-s3-region", "", "S3 region (default: AWS_REGION or ~/.aws/config, else us-east-1)")
	fs.DurationVar(&c.RetryMax, "backup-retry-max", backup.DefaultRetryMax, "longest wait between attempts while the backup target fails")
}

// checkBackupFlags refuses an incomplete set of backup flags as a usage
// error, before anything starts.
func checkBackupFlags(c backup.Config) error {
	if !c.Enabled() {
		return nil
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

func recoverCommand() *command {
	return &command{
		name:    "recover",
		summary: "rebuild an MPC wallet's private key offline from t share backups",
		usage: `Rebuilds a wallet's private key from the age-encrypted share backups the
signers made (--backup-dir / --backup-s3-bucket), with no coordinator, signer
or database: decrypts every backup under --backups with the age identity of
--identity, checks that they are shares of one key (same wallet, public key,
group and key generation, each file named after its wallet and signer), takes
t of them, interpolates the key, and checks it against the wallet's public
key. It prints the public key and addresses; only with --reveal-private-key
does it print the private key (hex, WIF, and with --keystore-passphrase-file
an Ethereum keystore JSON).

--backups is a file, a folder (searched for *.age), or s3://bucket/prefix;
repeat it to combine places. When they hold several wallets, name one with
--wallet. Any file that does not decrypt or check is refused, never skipped.

HSM wallets: with --hsm-master-key (the escrowed master key material, as
"sigil hsm generate-master-key" printed it, or that output age-encrypted to
the recovery recipients, opened with --identity) and the wallet's wrapped key,
from --hsm-keys-db (the driver database, or a restored copy) or from the
hsm.age backups of "sigil hsm backup-keys" under --backups, it unwraps the
key in software, with no HSM, after checking the master key's fingerprint.`,
		flags: func(fs *flag.FlagSet, env *cliEnv) func() error {
			var identity, walletID, passFile, endpoint, region, keysDB, masterKey string
			var backups listFlag
			var asJSON, reveal bool
			fs.StringVar(&identity, "identity", "", "age identity file (AGE-SECRET-KEY-1... or AGE-SECRET-KEY-PQ-1...) matching --backup-recipients")
			fs.Var(&backups, "backups", "backup files, folders or s3://bucket/prefix URLs (repeat or comma-separate)")
			fs.StringVar(&walletID, "wallet", "", "the wallet to recover, when --backups holds several")
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			fs.BoolVar(&reveal, "reveal-private-key", false, "print the private key (hex, WIF, Ethereum keystore): whoever sees it controls the funds")
			fs.StringVar(&passFile, "keystore-passphrase-file", "", "with --reveal-private-key, also print an Ethereum keystore JSON encrypted with the passphrase in this file")
			fs.StringVar(&endpoint, "s3-endpoint", "", "URL of an S3-compatible server for s3:// backups (path-style)")
			fs.StringVar(&region, "s3-region", "", "S3 region for s3:// backups")
			fs.StringVar(&keysDB, "hsm-keys-db", "", "HSM wallets: the driver database holding the wrapped keys (postgres://... or a SQLite file)")
			fs.StringVar(&masterKey, "hsm-master-key", "", "HSM wallets: file of the escrowed master key material (64 hex digits, or age-encrypted to the recovery recipients)")
			return func() error {
				if passFile != "" && !reveal {
					return fmt.Errorf("%w: --keystore-passphrase-file needs --reveal-private-key", errUsage)
				}
				var rec *backup.Recovered
				var err error
				if keysDB != "" || masterKey != "" {
					rec, err = recoverHSM(env, identity, walletID, masterKey, hsmSource{keysDB: keysDB, backups: backups, endpoint: endpoint, region: region})
				} else {
					rec, err = recoverMPC(env, identity, walletID, backups, endpoint, region)
				}
				if err != nil {
					return err
				}
				defer rec.Key.Zero()
				out, err := recoveryOutput(rec, reveal, passFile)
				if err != nil {
					return err
				}
				defer out.zero()
				return out.print(env, asJSON)
			}
		},
	}
}

func recoverMPC(env *cliEnv, identity, walletID string, backups listFlag, endpoint, region string) (*backup.Recovered, error) {
	if identity == "" || len(backups) == 0 {
		return nil, fmt.Errorf("%w: --identity and --backups are required (or, for an HSM wallet, --hsm-keys-db and --hsm-master-key)", errUsage)
	}
	ids, err := loadIdentities(identity)
	if err != nil {
		return nil, err
	}
	sources, err := backupSources(env.ctx, backups, endpoint, region)
	if err != nil {
		return nil, err
	}
	shares, err := backup.Read(env.ctx, sources, ids, walletID)
	if err != nil {
		return nil, err
	}
	if len(shares) == 0 {
		return nil, fmt.Errorf("%v: %w", []string(backups), backup.ErrNoBackups)
	}
	return backup.Recover(shares)
}

func loadIdentities(path string) ([]age.Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	defer clear(b)
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("--identity %s: %w", path, err)
	}
	return ids, nil
}

func backupSources(ctx context.Context, places []string, endpoint, region string) ([]backup.Location, error) {
	var out []backup.Location
	for _, p := range places {
		if strings.HasPrefix(p, "s3://") {
			c, err := backup.ParseS3URL(p)
			if err != nil {
				return nil, fmt.Errorf("--backups: %w", err)
			}
			c.Endpoint, c.Region = endpoint, region
			s, err := backup.NewS3(ctx, c)
			if err != nil {
				return nil, fmt.Errorf("--backups %s: %w", p, err)
			}
			out = append(out, backup.Location{Store: s, Where: p})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--backups: %w", err)
		}
		if st.IsDir() {
			out = append(out, backup.Location{Store: backup.Dir{Root: p}, Where: p})
		} else {
			out = append(out, backup.Location{Store: backup.Files{p}, Where: p})
		}
	}
	return out, nil
}

// recovered is what `sigil recover` prints.
type recovered struct {
	WalletID   string      `json:"wallet_id"`
	KeyID      string      `json:"key_id"`
	Threshold  int         `json:"threshold"`
	Group      []string    `json:"group"`
	Used       []string    `json:"used"`
	PublicKey  string      `json:"public_key"`
	Addresses  addresses   `json:"addresses"`
	PrivateKey *privateKey `json:"private_key,omitempty"`
}

type addresses struct {
	Ethereum      string `json:"ethereum"`
	BitcoinP2WPKH string `json:"bitcoin_p2wpkh"`
}

type privateKey struct {
	Hex              string          `json:"hex"`
	WIF              string          `json:"wif"`
	EthereumKeystore json.RawMessage `json:"ethereum_keystore,omitempty"`
}

func recoveryOutput(rec *backup.Recovered, reveal bool, passFile string) (*recovered, error) {
	eth, err := address.Ethereum(rec.PublicKey)
	if err != nil {
		return nil, err
	}
	btc, err := address.BitcoinP2WPKH(rec.PublicKey, "bc")
	if err != nil {
		return nil, err
	}
	out := &recovered{WalletID: rec.WalletID, KeyID: rec.KeyID, Threshold: rec.Threshold, Group: rec.Group, Used: rec.Used,
		PublicKey: hex.EncodeToString(rec.PublicKey), Addresses: addresses{Ethereum: eth, BitcoinP2WPKH: btc}}
	if !reveal {
		return out, nil
	}
	raw := rec.Key.Serialize()
	defer clear(raw)
	wif, err := address.WIF(raw)
	if err != nil {
		return nil, err
	}
	out.PrivateKey = &privateKey{Hex: hex.EncodeToString(raw), WIF: wif}
	if passFile != "" {
		ks, err := ethereumKeystore(raw, passFile)
		if err != nil {
			return nil, err
		}
		out.PrivateKey.EthereumKeystore = ks
	}
	return out, nil
}

// ethereumKeystore encrypts the key into a Web3 Secret Storage (v3) JSON,
// which geth, MetaMask and most wallets import.
func ethereumKeystore(raw []byte, passFile string) ([]byte, error) {
	pass, err := os.ReadFile(passFile)
	if err != nil {
		return nil, fmt.Errorf("--keystore-passphrase-file: %w", err)
	}
	defer clear(pass)
	pass = bytes.TrimRight(pass, "\r\n")
	if len(pass) == 0 {
		return nil, errors.New("--keystore-passphrase-file: the passphrase is empty")
	}
	k, err := crypto.ToECDSA(raw)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, err
	}
	return keystore.EncryptKey(&keystore.Key{Id: id, Address: crypto.PubkeyToAddress(k.PublicKey), PrivateKey: k},
		string(pass), keystoreScrypt.N, keystoreScrypt.P)
}

func (r *recovered) zero() {
	if r.PrivateKey != nil {
		r.PrivateKey.Hex, r.PrivateKey.WIF = "", ""
		clear(r.PrivateKey.EthereumKeystore)
	}
}

func (r *recovered) print(env *cliEnv, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	w := env.stdout
	if len(r.Used) == 0 {
		fmt.Fprintf(w, "Recovered HSM wallet %s from its wrapped key and the escrowed %s.\n", r.WalletID, r.KeyID)
	} else {
		fmt.Fprintf(w, "Recovered wallet %s from the backups of %s (threshold %d of %s).\n",
			r.WalletID, strings.Join(r.Used, ", "), r.Threshold, strings.Join(r.Group, ", "))
	}
	fmt.Fprintf(w, "The rebuilt private key matches the wallet's public key.\n\n")
	fmt.Fprintf(w, "Public key:        %s\nEthereum address:  %s\nBitcoin (P2WPKH):  %s\n", r.PublicKey, r.Addresses.Ethereum, r.Addresses.BitcoinP2WPKH)
	if r.PrivateKey == nil {
		fmt.Fprintf(w, "\nThe private key is not shown: add --reveal-private-key to print it.\n")
		return nil
	}
	fmt.Fprintf(w, "\nPRIVATE KEY: whoever sees it controls the funds.\nHex:               %s\nWIF:               %s\n", r.PrivateKey.Hex, r.PrivateKey.WIF)
	if len(r.PrivateKey.EthereumKeystore) > 0 {
		fmt.Fprintf(w, "Ethereum keystore: %s\n", r.PrivateKey.EthereumKeystore)
	}
	return nil
}
