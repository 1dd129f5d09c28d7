package dbtest

import "testing"

// PostgresURL creates a fresh PostgreSQL schema for t (dropped when t ends)
// and returns a URL whose connections use it, for code under test that
// opens its own database from a URL (a whole server, a signer process).
// It skips or fails like Open when PostgreSQL is unavailable.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return newPostgresSchema(t)
}
