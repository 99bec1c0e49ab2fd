package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/segments/segments/internal/limits"
	"github.com/uptrace/bun"
)

// RateLimiterOptions configure a RateLimiter.
type RateLimiterOptions struct {
	// Capacity is the most points a bucket holds (a new bucket starts full): the
	// burst a caller may spend at once. It must be positive.
	Capacity int
	// RestoreRate is how many points a bucket regains per second. It must be positive.
	RestoreRate float64
	// Workspace returns the workspace of the request whose context it is given; each
	// bucket belongs to one workspace (the key of its row leads with it).
	Workspace func(context.Context) (int64, bool)
	// Timeout bounds how long Take waits for the database; 0 means 250 ms. Past it,
	// Take fails and the request is served unthrottled (see RateLimiter).
	Timeout time.Duration
	// Conns caps the limiter's own connections (see RateLimiter); 0 means
	// DefaultRateLimiterConns.
	Conns int
}

// DefaultRateLimiterConns is the RateLimiterOptions.Conns of a limiter whose Conns is
// 0. A charge keeps its connection 0.3-1 ms as the load varies, so at the 2,500
// requests a second the server serves its cheapest pages on 2 cores, its charges
// keep one to three busy.
const DefaultRateLimiterConns = 4

// A RateLimiter is a limits.Throttle whose token buckets live in PostgreSQL, so that
// every server instance on the database charges the same buckets: a caller's budget
// is the same whichever instance its requests reach, and no instance needs to know
// the others.
//
// Each Take is one statement on the bucket's own row (table rate_limit_buckets): it
// refills the bucket by the time elapsed since its last charge (the database's clock,
// so instances' clocks do not matter), caps it at the capacity, takes the cost if the
// bucket holds enough, and returns what is left and how long until the cost would be
// available. Buckets only contend on their own row: a caller who hammers the API
// waits on its own row lock, never on another's.
//
// A refusal is also remembered in the instance for as long as it surely holds (a
// bucket's points only grow by its refill, and other instances can only take more),
// so that a throttled caller who keeps retrying is refused without asking the
// database again.
//
// The limiter charges on connections of its own (Options.Conns), not the store's
// pool: a charge runs before its request, while the requests already running may
// hold every connection of the pool for seconds (counts of a large workspace). On
// the pool, charges waited for those requests, past Options.Timeout, and every
// request was then served unthrottled: the limiter went away exactly under the load
// it exists for.
//
// When the database does not answer within Options.Timeout, Take fails and the
// request is served: the limiter fails open. It exists to share capacity fairly, not
// to guard correctness; every request is still bounded by the per-request limits
// (maximum cost, request timeout, statement timeout), and a request that gets past a
// slow database's limiter meets the same database right after. Failing closed would
// turn any hiccup of the database into every caller's 429.
type RateLimiter struct {
	db   *bun.DB // its own connections (the store's Close closes them)
	opts RateLimiterOptions

	mu      sync.Mutex
	refused map[bucketKey]lowBucket
}

type bucketKey struct {
	ws     int64
	bucket string
}

// lowBucket is a bucket known to hold at most tokens points at time at.
type lowBucket struct {
	tokens float64
	at     time.Time
}

// maxRemembered bounds the refusals a RateLimiter remembers; past it, it forgets
// them all (they are only a shortcut).
const maxRemembered = 10_000

// NewRateLimiter returns a RateLimiter on s's database, with connections of its own
// that s's Close closes.
func NewRateLimiter(s *Store, opts RateLimiterOptions) (*RateLimiter, error) {
	if opts.Capacity <= 0 || !(opts.RestoreRate > 0) || math.IsInf(opts.RestoreRate, 0) {
		return nil, fmt.Errorf("store: a rate limiter needs a positive capacity and restore rate, not %d and %g", opts.Capacity, opts.RestoreRate)
	}
	if opts.Workspace == nil {
		return nil, errors.New("store: a rate limiter needs a Workspace function")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 250 * time.Millisecond
	}
	if opts.Conns <= 0 {
		opts.Conns = DefaultRateLimiterConns
	}
	return &RateLimiter{db: s.ownPool(opts.Conns), opts: opts, refused: map[bucketKey]lowBucket{}}, nil
}

var _ limits.Throttle = (*RateLimiter)(nil)

// takeSQL charges one bucket in one statement. Its arguments: workspace, bucket,
// cost, capacity, restore rate (points per second).
//
// The row source sets the workspace for row-level security (app.workspace_id, for
// this statement's transaction only) before the row is inserted or the conflicting
// row updated, so that the statement passes the table's policy (migration
// 20261129000003) as the application's role whether or not its context carries the
// workspace for the store's own prefix (tenant.go); both name the same workspace.
// In the update, every expression reads the row as it was: "avail" is
// the refilled balance, written out three times since SQL cannot name it there. A
// transaction that started earlier but locked the row later must not move
// updated_at back (which would refill twice): hence the greatest.
const takeSQL = `
INSERT INTO rate_limit_buckets AS b (workspace_id, bucket, tokens, updated_at, granted)
SELECT set_config('app.workspace_id', ?0::bigint::text, true)::bigint, ?1,
       ?3::float8 - CASE WHEN ?2 <= ?3 THEN ?2 ELSE 0 END, now(), ?2 <= ?3
ON CONFLICT (workspace_id, bucket) DO UPDATE SET
    granted = least(?3::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * ?4::float8) >= ?2,
    tokens = least(?3::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * ?4::float8)
        - CASE WHEN least(?3::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * ?4::float8) >= ?2
               THEN ?2 ELSE 0 END,
    updated_at = greatest(b.updated_at, now())
RETURNING b.tokens, b.granted,
    CASE WHEN b.granted THEN 0 ELSE (?2 - b.tokens) / ?4::float8 END AS wait_seconds`

// Take charges cost points to bucket (of the request's workspace). See RateLimiter.
func (l *RateLimiter) Take(ctx context.Context, bucket string, cost int) (limits.Status, error) {
	ws, ok := l.opts.Workspace(ctx)
	if !ok {
		return limits.Status{}, errors.New("store: rate limiter: the request has no workspace")
	}
	cost = max(cost, 0)
	key := bucketKey{ws, bucket}
	if st, ok := l.stillLow(key, cost); ok {
		return st, limits.ErrThrottled
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	var row struct {
		Tokens      float64 `bun:"tokens"`
		Granted     bool    `bun:"granted"`
		WaitSeconds float64 `bun:"wait_seconds"`
	}
	start := time.Now()
	if err := l.db.NewRaw(takeSQL, ws, bucket, cost, l.opts.Capacity, l.opts.RestoreRate).Scan(ctx, &row); err != nil {
		return limits.Status{}, fmt.Errorf("store: rate limiter: %w", err)
	}
	st := l.status(row.Tokens, row.WaitSeconds)
	if row.Granted {
		l.forget(key)
		return st, nil
	}
	l.remember(key, row.Tokens, start)
	return st, limits.ErrThrottled
}

func (l *RateLimiter) status(tokens, waitSeconds float64) limits.Status {
	return limits.Status{
		MaximumAvailable:   l.opts.Capacity,
		CurrentlyAvailable: int(math.Floor(max(tokens, 0))),
		RestoreRate:        l.opts.RestoreRate,
		Wait:               time.Duration(math.Ceil(max(waitSeconds, 0) * float64(time.Second))),
	}
}

// stillLow answers for a bucket that was refused recently, when it surely still
// holds fewer than cost points.
func (l *RateLimiter) stillLow(key bucketKey, cost int) (limits.Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	low, ok := l.refused[key]
	if !ok {
		return limits.Status{}, false
	}
	tokens := low.tokens + time.Since(low.at).Seconds()*l.opts.RestoreRate
	if tokens >= float64(l.opts.Capacity) {
		delete(l.refused, key)
		return limits.Status{}, false
	}
	if tokens >= float64(cost) {
		return limits.Status{}, false
	}
	return l.status(tokens, (float64(cost)-tokens)/l.opts.RestoreRate), true
}

// remember notes that key held tokens points at a time after since.
func (l *RateLimiter) remember(key bucketKey, tokens float64, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.refused) >= maxRemembered {
		clear(l.refused)
	}
	// Dated from before the statement was sent, which is before the database's
	// clock read the bucket: the refill estimated from it is then at least the true
	// one, and a refusal from the estimate one the database would make too.
	l.refused[key] = lowBucket{tokens: tokens, at: since}
}

func (l *RateLimiter) forget(key bucketKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.refused, key)
}
