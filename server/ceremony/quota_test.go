package ceremony_test

import (
	"testing"

	"github.com/sigil-wallet/sigil/server/ceremony"
	"github.com/sigil-wallet/sigil/server/store"
)

// TestRelayQuotaCoversMeasuredTraffic checks the quota against the traffic
// BenchmarkRelayTraffic* measured (busiest party, before sealing), and that
// it stays a small multiple of it: a bound far above need bounds nothing.
func TestRelayQuotaCoversMeasuredTraffic(t *testing.T) {
	for _, m := range []struct {
		kind     store.CeremonyKind
		parties  int
		messages int
		bytes    int64
	}{
		{store.CeremonyKeygen, 3, 10, 181_934},
		{store.CeremonyKeygen, 5, 20, 364_008},
		{store.CeremonySign, 2, 7, 17_606},
		{store.CeremonySign, 3, 14, 35_212},
		{store.CeremonySign, 5, 28, 70_424},
	} {
		q := ceremony.RelayQuota(m.kind, m.parties)
		sealed := m.bytes + int64(m.messages)*512 // generous sealing overhead
		if q.Messages < m.messages+m.parties-1 || q.Bytes < sealed {
			t.Errorf("%s of %d parties: quota %+v below the measured %d messages, %d bytes sealed (abort notice included)",
				m.kind, m.parties, q, m.messages, sealed)
		}
		if q.Messages > 4*m.messages || q.Bytes > 4*m.bytes {
			t.Errorf("%s of %d parties: quota %+v is over 4x the measured %d messages, %d bytes", m.kind, m.parties, q, m.messages, m.bytes)
		}
	}
	if q := ceremony.RelayQuota("presign", 3); q.Messages < ceremony.RelayQuota(store.CeremonySign, 3).Messages ||
		q.Bytes < ceremony.RelayQuota(store.CeremonyKeygen, 3).Bytes {
		t.Errorf("an unmeasured kind gets %+v, want the largest known need", q)
	}
}
