package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"filippo.io/age"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/taurusgroup/multi-party-sig/pkg/math/curve"
	"github.com/taurusgroup/multi-party-sig/pkg/math/polynomial"
	"github.com/taurusgroup/multi-party-sig/pkg/party"
)

// Recovery errors.
var (
	ErrTooFew     = errors.New("not enough backups to rebuild the key")
	ErrMismatch   = errors.New("the backups do not belong together")
	ErrWrongKey   = errors.New("the rebuilt key does not match the wallet's public key")
	ErrManyWallet = errors.New("backups of several wallets")
	// ErrNeedsMasterKey reports an HSM wallet's backup given without the
	// master key material.
	ErrNeedsMasterKey = errors.New("the master key is needed")
)

// Recovered is a key rebuilt from backups.
type Recovered struct {
	WalletID  string
	KeyID     string
	Threshold int
	Group     []string
	// Used lists the signers whose backups were read.
	Used []string
	// PublicKey is the 33-byte compressed key the backups name, which the
	// rebuilt private key was checked against.
	PublicKey []byte
	// Key is the private key. Zero it (Key.Zero) when done.
	Key *secp256k1.PrivateKey
}

// Location is one place backups are read from, with a name for messages.
type Location struct {
	Store Reader
	Where string
}

// Read decrypts every backup file in sources that belongs to walletID (all
// files when walletID is empty). Any file that does not open or check is an
// error naming it: a damaged backup is never skipped silently.
func Read(ctx context.Context, sources []Location, identities []age.Identity, walletID string) ([]*Share, error) {
	var out []*Share
	for _, src := range sources {
		names, err := src.Store.List(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", src.Where, err)
		}
		for _, name := range names {
			if walletID != "" && !nameMayHold(name, walletID) {
				continue
			}
			file, err := src.Store.Get(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			sh, err := Decrypt(file, identities, name)
			if err != nil {
				return nil, fmt.Errorf("backup %s: %w", name, err)
			}
			if walletID == "" || sh.WalletID == walletID {
				out = append(out, sh)
			}
		}
	}
	return out, nil
}

// nameMayHold skips files in another wallet's folder.
func nameMayHold(name, walletID string) bool {
	parts := strings.Split(strings.ReplaceAll(name, "\\", "/"), "/")
	if len(parts) < 2 || !strings.HasPrefix(parts[len(parts)-2], "wal_") {
		return true
	}
	return parts[len(parts)-2] == walletID
}

// Recover checks that shares belong to one key and rebuilds it from t of
// them by Lagrange interpolation at zero of their secret shares, then checks
// the result against the public key.
func Recover(shares []*Share) (*Recovered, error) {
	if len(shares) == 0 {
		return nil, ErrNoBackups
	}
	first := shares[0]
	if wallets := walletsOf(shares); len(wallets) > 1 {
		return nil, fmt.Errorf("%w: %s (choose one with --wallet)", ErrManyWallet, strings.Join(wallets, ", "))
	}
	if first.Protocol == ProtocolHSMWrapped {
		return nil, fmt.Errorf("%w: wallet %s is an HSM wallet: its backup is its wrapped key, which takes the escrowed master key (--hsm-master-key)",
			ErrNeedsMasterKey, first.WalletID)
	}
	bySigner := map[string]*Share{}
	for _, sh := range shares {
		if err := sameKey(first, sh); err != nil {
			return nil, err
		}
		if _, dup := bySigner[sh.Signer]; dup {
			continue // the same share from two places
		}
		bySigner[sh.Signer] = sh
	}
	signers := slices.Sorted(maps.Keys(bySigner))
	if len(signers) < first.Threshold {
		return nil, fmt.Errorf("%w: wallet %s needs %d of its %d signers' backups (%s), found %d (%s)", ErrTooFew,
			first.WalletID, first.Threshold, len(first.Group), strings.Join(first.Group, ", "), len(signers), strings.Join(signers, ", "))
	}
	if err := samePublicShares(bySigner, signers); err != nil {
		return nil, err
	}
	return interpolate(first, bySigner, signers[:first.Threshold])
}

func walletsOf(shares []*Share) []string {
	set := map[string]bool{}
	for _, sh := range shares {
		set[sh.WalletID] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// sameKey checks two headers describe the same key material.
func sameKey(a, b *Share) error {
	switch {
	case a.Protocol != b.Protocol:
		return fmt.Errorf("%w: the backups of %s and %s hold different kinds of key material (%s, %s)", ErrMismatch, a.Signer, b.Signer, a.Protocol, b.Protocol)
	case a.PublicKey != b.PublicKey:
		return fmt.Errorf("%w: the backups of %s and %s are for different public keys", ErrMismatch, a.Signer, b.Signer)
	case a.KeyID != b.KeyID:
		return fmt.Errorf("%w: the backups of %s and %s come from different key generations or refreshes (%s, %s)",
			ErrMismatch, a.Signer, b.Signer, a.KeyID, b.KeyID)
	case a.Threshold != b.Threshold || !slices.Equal(a.Group, b.Group):
		return fmt.Errorf("%w: the backups of %s and %s name different signer groups", ErrMismatch, a.Signer, b.Signer)
	}
	return nil
}

// samePublicShares checks every share agrees on every party's public share.
func samePublicShares(bySigner map[string]*Share, signers []string) error {
	ref := bySigner[signers[0]].Config
	for _, s := range signers[1:] {
		cfg := bySigner[s].Config
		for id, p := range ref.Public {
			q, ok := cfg.Public[id]
			if !ok || !p.ECDSA.Equal(q.ECDSA) {
				return fmt.Errorf("%w: the backups of %s and %s disagree on the public share of %s", ErrMismatch, signers[0], s, id)
			}
		}
	}
	return nil
}

func interpolate(first *Share, bySigner map[string]*Share, use []string) (*Recovered, error) {
	group := curve.Secp256k1{}
	ids := make([]party.ID, len(use))
	for i, s := range use {
		ids[i] = party.ID(s)
	}
	lambda := polynomial.Lagrange(group, ids)
	secret := group.NewScalar()
	for _, id := range ids {
		secret = secret.Add(group.NewScalar().Set(lambda[id]).Mul(bySigner[string(id)].Config.ECDSA))
	}
	raw, err := secret.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	defer clear(raw)
	key := secp256k1.PrivKeyFromBytes(raw)
	pub, err := hex.DecodeString(first.PublicKey)
	if err != nil || !slices.Equal(key.PubKey().SerializeCompressed(), pub) {
		key.Zero()
		return nil, fmt.Errorf("%w (%s)", ErrWrongKey, first.PublicKey)
	}
	return &Recovered{WalletID: first.WalletID, KeyID: first.KeyID, Threshold: first.Threshold, Group: first.Group,
		Used: use, PublicKey: pub, Key: key}, nil
}
