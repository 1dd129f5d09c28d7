package settle_test

import (
	"testing"

	"github.com/sigil-wallet/sigil/server/settle"
)

func TestNotifyWakesEverySubscriberOfThatIDOnly(t *testing.T) {
	h := settle.New()
	a1, r1 := h.Subscribe("wal_a")
	a2, r2 := h.Subscribe("wal_a")
	b, rb := h.Subscribe("wal_b")
	defer rb()
	h.Notify("wal_a", "")
	for _, ch := range []<-chan struct{}{a1, a2} {
		select {
		case <-ch:
		default:
			t.Fatal("a subscriber of wal_a was not woken")
		}
	}
	select {
	case <-b:
		t.Fatal("wal_b woken by a notify of wal_a")
	default:
	}
	r1()
	r2()
	r2() // releasing twice is harmless
	if h.Len() != 1 {
		t.Fatalf("%d ids kept, want 1 (wal_b)", h.Len())
	}
}

func TestReleaseForgetsAbandonedWaits(t *testing.T) {
	h := settle.New()
	_, r1 := h.Subscribe("sig_x")
	_, r2 := h.Subscribe("sig_x")
	r1()
	if h.Len() != 1 {
		t.Fatal("released while another subscriber still waits")
	}
	r2()
	if h.Len() != 0 {
		t.Fatalf("%d ids kept after every subscriber left", h.Len())
	}
}
