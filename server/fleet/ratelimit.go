package fleet

import "time"

// RateLimitError is a registration refused by a rate limit. It wraps
// ErrRateLimited and says how long until the limit lets an attempt through,
// so that the refusal can tell the caller when to retry.
type RateLimitError struct {
	// Wait is how long until the spent budget has a token again.
	Wait time.Duration
}

func (e *RateLimitError) Error() string { return ErrRateLimited.Error() }

// Unwrap makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfter returns Wait.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Wait }

// Wait returns how long until key has a token, without taking one: zero
// when it has one now.
func (l *Limiter) Wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[key]; !ok {
		return 0
	}
	return l.untilToken(l.refill(key, now))
}

// untilToken returns how long until b has a token: zero when it has one.
// l.mu is held.
func (l *Limiter) untilToken(b *bucket) time.Duration {
	switch {
	case b.tokens >= 1:
		return 0
	case l.rate <= 0:
		return time.Hour
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}
