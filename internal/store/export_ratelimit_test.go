package store

// SetMaxReserves sets how many buckets l keeps a reserve of, for the test of what it
// gives back past them (ratelimit_test.go).
func SetMaxReserves(l *RateLimiter, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxReserves = n
}
