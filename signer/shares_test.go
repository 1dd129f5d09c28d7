package signer

import (
	"bytes"
	"context"
	"io/fs"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
)

// TestShareEpochMigration checks that shares stored before key epochs
// become epoch 1 of ECDSA over secp256k1, still readable and still
// unique per wallet and epoch.
func TestShareEpochMigration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		ctx := context.Background()
		d := open(t)
		sub, err := fs.Sub(migrations, "migrations/"+string(d.Dialect))
		if err != nil {
			t.Fatal(err)
		}
		dialect := goose.DialectSQLite3
		if d.Dialect == db.Postgres {
			dialect = goose.DialectPostgres
		}
		p, err := goose.NewProvider(dialect, d.DB.DB, sub, goose.WithTableName("goose_signer"), goose.WithDisableGlobalRegistry(true))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ExecContext(ctx, d.Rebind(`INSERT INTO shares (wallet_id, keygen_ceremony_id, state, public_key, sealed, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`), "wal_old", "cer_old", shareActive, []byte{2, 1}, []byte{9}, 1, 2); err != nil {
			t.Fatal(err)
		}
		st, err := openShares(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := st.get(ctx, "wal_old")
		if err != nil {
			t.Fatal(err)
		}
		if sh.KeyEpoch != firstEpoch || sh.Scheme != schemeSecp256k1 || sh.State != shareActive || !bytes.Equal(sh.Sealed, []byte{9}) {
			t.Fatalf("migrated share = %+v", sh)
		}
		// A later epoch of the same wallet is a new row; the same epoch again is refused.
		if err := st.putPending(ctx, &share{WalletID: "wal_old", KeyEpoch: 2, Scheme: schemeSecp256k1, KeygenCeremonyID: "cer_new", PublicKey: []byte{3}, Sealed: []byte{8}}); err != nil {
			t.Fatal(err)
		}
		if err := st.putPending(ctx, &share{WalletID: "wal_old", KeyEpoch: 2, Scheme: schemeSecp256k1, KeygenCeremonyID: "cer_x", PublicKey: []byte{3}, Sealed: []byte{8}}); err == nil {
			t.Fatal("a second share of the same epoch was stored")
		}
		// Epoch 1 signs until epoch 2 is active.
		if sh, _ := st.get(ctx, "wal_old"); sh.KeyEpoch != 1 {
			t.Fatalf("current epoch = %d, want 1", sh.KeyEpoch)
		}
		if ok, err := st.activate(ctx, &share{WalletID: "wal_old", KeyEpoch: 2, KeygenCeremonyID: "cer_new"}); !ok || err != nil {
			t.Fatalf("activate epoch 2: %v, %v", ok, err)
		}
		if sh, _ := st.get(ctx, "wal_old"); sh.KeyEpoch != 2 {
			t.Fatalf("current epoch = %d, want 2", sh.KeyEpoch)
		}
	})
}
