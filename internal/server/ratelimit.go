package server

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/secondopinion/gateway/internal/domain"
)

// RateLimits are token buckets: per client address before authentication
// (so a flood of bad tokens costs little), and per principal (sub + org)
// after. Batching is refused outright and aliases are bounded by the
// document guard, so neither multiplies a request's cost past these.
type RateLimits struct {
	PerAddress      rate.Limit
	AddressBurst    int
	PerPrincipal    rate.Limit
	PrincipalBurst  int
	MaxTrackedKeys  int
	IdleForgetAfter time.Duration
}

// DefaultRateLimits suit partner integrations and mobile apps alike.
var DefaultRateLimits = RateLimits{
	PerAddress: 100, AddressBurst: 200, PerPrincipal: 30, PrincipalBurst: 60,
	MaxTrackedKeys: 100_000, IdleForgetAfter: 10 * time.Minute,
}

type limiterSet struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	max     int
	idle    time.Duration
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiterSet(every rate.Limit, burst, max int, idle time.Duration) *limiterSet {
	return &limiterSet{every: every, burst: burst, max: max, idle: idle, buckets: map[string]*bucket{}}
}

// allow takes a token for key; when none is left it says how long to wait.
func (s *limiterSet) allow(key string, now time.Time) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[key]
	if !ok {
		if len(s.buckets) >= s.max {
			s.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(s.every, s.burst)}
		s.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict forgets idle buckets (a forgotten bucket starts full, which only
// ever favours the client).
func (s *limiterSet) evict(now time.Time) {
	for k, b := range s.buckets {
		if now.Sub(b.seen) > s.idle {
			delete(s.buckets, k)
		}
	}
	if len(s.buckets) >= s.max { // still full: drop arbitrary ones
		n := len(s.buckets) / 10
		for k := range s.buckets {
			if n == 0 {
				break
			}
			delete(s.buckets, k)
			n--
		}
	}
}

func tooMany(w http.ResponseWriter, wait time.Duration, what string) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, errorBody("rate limit exceeded for this "+what+"; retry later", domain.CodeRateLimited))
}

// limitByAddress applies the per-address bucket before authentication.
func limitByAddress(l RateLimits, next http.Handler) http.Handler {
	set := newLimiterSet(l.PerAddress, l.AddressBurst, l.MaxTrackedKeys, l.IdleForgetAfter)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if ok, wait := set.allow(host, time.Now()); !ok {
			tooMany(w, wait, "client address")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitByPrincipal applies the per-principal bucket after authentication.
// The same buckets serve operations over websockets (wsGuard).
func limitByPrincipal(set *limiterSet, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := domain.PrincipalFrom(r.Context()); ok {
			if ok, wait := set.allow(principalKey(p), time.Now()); !ok {
				tooMany(w, wait, "caller")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
