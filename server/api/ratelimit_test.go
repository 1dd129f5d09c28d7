package api

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{"4/1m": {4, time.Minute}, " 100/1h ": {100, time.Hour}, "off": {}, "0": {}} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "4", "x/1m", "0/1m", "-1/1m", "4/0s", "4/soon"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	if s := DefaultMPCWalletRate.String(); s != "4/1m0s" {
		t.Errorf("default rate prints as %q", s)
	}
}

// TestLimiterRefills: a burst of N, then one more per Per/N, each key on its
// own, with the wait until the next one reported exactly.
func TestLimiterRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(Rate{N: 3, Per: time.Minute}, func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.take("a"); !ok {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	ok, wait := l.take("a")
	if ok || wait != 20*time.Second {
		t.Fatalf("past the burst: ok=%v wait=%v, want refused for 20s", ok, wait)
	}
	if ok, _ := l.take("b"); !ok {
		t.Fatal("another key was refused")
	}
	now = now.Add(19 * time.Second)
	if ok, wait := l.take("a"); ok || wait != time.Second {
		t.Fatalf("after 19s: ok=%v wait=%v", ok, wait)
	}
	now = now.Add(time.Second)
	if ok, _ := l.take("a"); !ok {
		t.Fatal("refused after the wait it announced")
	}
	l.refund("a")
	if ok, _ := l.take("a"); !ok {
		t.Fatal("a refunded event was not given back")
	}
}
