package fleet

import (
	"cmp"
	"maps"
	"net"
	"slices"
	"sync"
	"time"
)

// Limiter is a keyed token-bucket rate limiter: each key (a peer address, a
// serial number) has a bucket of Burst tokens refilled at Rate per second.
// It keeps at most a bounded number of keys, forgetting full buckets first,
// so that a flood of distinct keys cannot exhaust memory. It is safe for
// concurrent use.
type Limiter struct {
	rate    float64 // tokens per second
	burst   float64
	maxKeys int

	mu sync.Mutex // guards buckets
	// buckets holds the state of every key seen recently.
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// NewLimiter returns a limiter allowing burst events at once per key and rate
// events per second on average, tracking at most maxKeys keys.
func NewLimiter(rate float64, burst int, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = 10000
	}
	return &Limiter{rate: rate, burst: float64(burst), maxKeys: maxKeys, buckets: map[string]*bucket{}}
}

// refill returns key's bucket with tokens brought up to now. l.mu is held.
func (l *Limiter) refill(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
		return b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.at = now
	}
	return b
}

// prune forgets full buckets and, when that is not enough, the fuller half
// of the rest: the emptiest buckets, those of the callers being limited,
// are kept, so that a flood of new keys cannot lift a limit. l.mu is held.
func (l *Limiter) prune(now time.Time) {
	level := func(b *bucket) float64 { return b.tokens + now.Sub(b.at).Seconds()*l.rate }
	for k, b := range l.buckets {
		if level(b) >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.maxKeys {
		return
	}
	keys := slices.Collect(maps.Keys(l.buckets))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Compare(level(l.buckets[a]), level(l.buckets[b])) })
	for _, k := range keys[l.maxKeys/2:] {
		delete(l.buckets, k)
	}
}

// Allow takes a token for key and reports whether one was available.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Take takes a token for key like Allow and, when none is available, also
// returns how long until one will be: the delay a refused caller should
// wait before retrying.
func (l *Limiter) Take(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.untilToken(b)
}

// Len returns how many keys the limiter tracks now.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Exhausted reports whether key has no token left, without taking one.
func (l *Limiter) Exhausted(key string, now time.Time) bool {
	return l.Wait(key, now) > 0
}

// RepeatFilter coalesces repeated events per key: the first event of a key in
// each window passes, later ones in the same window are counted and reported
// with the next event that passes. It keeps the audit trail useful (and
// cheap) when a caller repeats the same failure thousands of times. It is
// safe for concurrent use.
type RepeatFilter struct {
	window  time.Duration
	maxKeys int

	mu sync.Mutex // guards seen
	// seen holds, per key, the start of its window and how many events it
	// suppressed.
	seen map[string]*repeat
}

type repeat struct {
	start      time.Time
	suppressed uint64
}

// NewRepeatFilter returns a filter that passes one event per key per window,
// tracking at most maxKeys keys.
func NewRepeatFilter(window time.Duration, maxKeys int) *RepeatFilter {
	if maxKeys <= 0 {
		maxKeys = 10000
	}
	return &RepeatFilter{window: window, maxKeys: maxKeys, seen: map[string]*repeat{}}
}

// Admit reports whether an event for key should be recorded now and, if so,
// how many events of the key were suppressed since the last recorded one.
func (f *RepeatFilter) Admit(key string, now time.Time) (ok bool, suppressed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.seen[key]
	if r != nil && now.Sub(r.start) < f.window {
		r.suppressed++
		return false, 0
	}
	if r == nil {
		if len(f.seen) >= f.maxKeys {
			for k, v := range f.seen {
				if now.Sub(v.start) >= f.window {
					delete(f.seen, k)
				}
			}
			if len(f.seen) >= f.maxKeys {
				clear(f.seen)
			}
		}
		r = &repeat{}
		f.seen[key] = r
	}
	suppressed = r.suppressed
	r.start, r.suppressed = now, 0
	return true, suppressed
}

// Retract undoes an admission whose event could not be recorded: the next
// event for key is admitted at once and reports suppressed more repeats.
func (f *RepeatFilter) Retract(key string, suppressed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.seen[key]
	if r == nil {
		r = &repeat{}
		f.seen[key] = r
	}
	r.start = time.Time{}
	r.suppressed += suppressed
}

// PeerHost returns the host part of a peer address ("10.0.0.7:51234" →
// "10.0.0.7"), the key used to rate limit a caller across its connections.
// An IPv6 address stands for its /64 ("[2001:db8::7]:443" →
// "2001:db8::/64"): a single host is usually given a whole /64, and
// limiting each of its addresses apart would not limit it.
func PeerHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil || ip.IsLoopback():
		return host
	case ip.To4() != nil:
		return ip.To4().String() // also for an IPv4-mapped IPv6 address
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
