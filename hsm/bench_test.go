package hsm_test

import (
	"testing"
)

// The architecture quotes about 440 unwrap+sign+destroy per second on one
// session and about 2,200 signatures per second with a resident key on the
// 2-core reference machine. "raw" times the PKCS#11 calls only; "Sign" adds
// what hsm.Sign does in Go (low-S, recovery id, verification).
func BenchmarkUnwrapSignDestroy(b *testing.B) {
	h := newHSM(b, "bench-uwsd", 4)
	ctx := testContext(b)
	pub, wrapped, err := h.GenerateKey(ctx)
	if err != nil {
		b.Fatal(err)
	}
	digest := make([]byte, 32)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
	}
	b.Run("raw/serial", func(b *testing.B) {
		for b.Loop() {
			if err := h.RawUnwrapSignDestroy(ctx, wrapped, digest); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("raw/pool4-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := h.RawUnwrapSignDestroy(ctx, wrapped, digest); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
	b.Run("Sign/serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := h.Sign(ctx, wrapped, pub, digest); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("Sign/pool4-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := h.Sign(ctx, wrapped, pub, digest); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
}

func BenchmarkResidentKeySign(b *testing.B) {
	h := newHSM(b, "bench-resident", 1)
	sign, done, err := h.ResidentSigner(testContext(b))
	if err != nil {
		b.Fatal(err)
	}
	defer done()
	digest := make([]byte, 32)
	for b.Loop() {
		if err := sign(digest); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sig/s")
}
