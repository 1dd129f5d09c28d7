package api

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sigil-wallet/sigil/server/auth"
)

// Rate is at most N events per Per, in bursts of up to N. N == 0 means no
// limit.
type Rate struct {
	N   int
	Per time.Duration
}

// DefaultMPCWalletRate bounds the MPC wallets one API token may ask for:
// each is a CMP key generation that keeps every signer busy for about
// half a minute of CPU on a small machine, and a flood of them would all
// time out together.
var DefaultMPCWalletRate = Rate{N: 4, Per: time.Minute}

// ParseRate reads "N/duration" (e.g. "4/1m", "100/1h"); "0" or "off" is no
// limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "off" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration such as 4/1m, or off", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: want N/duration such as 4/1m, or off", s)
	}
	return Rate{N: count, Per: d}, nil
}

// String is the form ParseRate reads.
func (r Rate) String() string {
	if r.N == 0 {
		return "off"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// Set implements flag.Value.
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err == nil {
		*r = v
	}
	return err
}

// limiter is a per-key rate limit (GCRA: each key's theoretical arrival
// time advances by Per/N per event, and may run at most Per ahead of now).
// It lives in this process's memory: each coordinator replica limits on
// its own, so a token reaching several replicas gets the rate at each.
type limiter struct {
	rate Rate
	now  func() time.Time
	mu   sync.Mutex
	tat  map[string]time.Time
}

func newLimiter(r Rate, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	return &limiter{rate: r, now: now, tat: make(map[string]time.Time)}
}

// take spends one event of key, or says how long until one is available.
func (l *limiter) take(key string) (bool, time.Duration) {
	interval := l.rate.Per / time.Duration(l.rate.N)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat := l.tat[key]
	if tat.Before(now) {
		tat = now
	}
	if ahead := tat.Sub(now); ahead > l.rate.Per-interval {
		return false, ahead - (l.rate.Per - interval)
	}
	l.tat[key] = tat.Add(interval)
	if len(l.tat) > 100_000 {
		l.forgetLocked(now)
	}
	return true, 0
}

// refund gives back an event that did no work (an idempotent replay).
func (l *limiter) refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tat, ok := l.tat[key]; ok {
		l.tat[key] = tat.Add(-l.rate.Per / time.Duration(l.rate.N))
	}
}

// forgetLocked drops the keys that are back to a full burst.
func (l *limiter) forgetLocked(now time.Time) {
	for k, tat := range l.tat {
		if !tat.After(now) {
			delete(l.tat, k)
		}
	}
}

// LimitMPCWallets bounds, per API token, how many wallets with the MPC
// backend CreateWallet starts (r.N == 0: no limit). now is the clock (nil:
// time.Now).
func (s *WalletServer) LimitMPCWallets(r Rate, now func() time.Time) {
	if r.N <= 0 || r.Per <= 0 {
		s.mpcLimit = nil
		return
	}
	s.mpcLimit = newLimiter(r, now)
}

// takeMPCWallet spends one of the caller's MPC wallets, or refuses with
// ResourceExhausted saying when to retry (also as a RetryInfo detail and a
// Retry-After header, in whole seconds).
func (s *WalletServer) takeMPCWallet(ctx context.Context) error {
	if s.mpcLimit == nil {
		return nil
	}
	ok, wait := s.mpcLimit.take(callerKey(ctx))
	if ok {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	ce := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"too many MPC wallets requested with this API token: at most %d per %s (the coordinator's --mpc-wallet-rate); retry in %ds",
		s.mpcLimit.rate.N, s.mpcLimit.rate.Per, secs))
	if d, err := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); err == nil {
		ce.AddDetail(d)
	}
	ce.Meta().Set("Retry-After", strconv.Itoa(secs))
	return ce
}

// refundMPCWallet gives back what takeMPCWallet spent when the call
// started nothing (it replayed an earlier request).
func (s *WalletServer) refundMPCWallet(ctx context.Context) {
	if s.mpcLimit != nil {
		s.mpcLimit.refund(callerKey(ctx))
	}
}

func callerKey(ctx context.Context) string {
	if p, ok := auth.PrincipalFrom(ctx); ok {
		return p.TokenID
	}
	return ""
}
