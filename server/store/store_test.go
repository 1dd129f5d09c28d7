package store_test

import (
	"context"
	"testing"

	"github.com/sigil-wallet/sigil/internal/db"
	"github.com/sigil-wallet/sigil/internal/db/dbtest"
	"github.com/sigil-wallet/sigil/server/store"
	"github.com/sigil-wallet/sigil/server/store/storetest"
)

// TestConformance runs the store suite on SQLite and PostgreSQL.
func TestConformance(t *testing.T) {
	for _, dialect := range dbtest.Dialects() {
		t.Run(string(dialect), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openStore(t, dialect)
			})
		})
	}
}

func openStore(t *testing.T, dialect db.Dialect) *store.SQL {
	t.Helper()
	s, err := store.Open(context.Background(), dbtest.Open(t, dialect))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMigrateTwice checks a restart on an existing database is a no-op.
func TestMigrateTwice(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.OpenFunc) {
		ctx := context.Background()
		if _, err := store.Open(ctx, open(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Open(ctx, open(t)); err != nil {
			t.Fatalf("second migration: %v", err)
		}
	})
}
