package store

import "time"

// SetMaxReserves sets how many buckets l keeps a reserve of, for the test of what it
// gives back past them (ratelimit_test.go).
func SetMaxReserves(l *RateLimiter, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxReserves = n
}

// SetKeepWarmInterval sets how often the rate limiters made after it check their
// connections (keepWarmLoop), until the returned restore.
func SetKeepWarmInterval(d time.Duration) (restore func()) {
	was := keepWarmInterval
	keepWarmInterval = d
	return func() { keepWarmInterval = was }
}
