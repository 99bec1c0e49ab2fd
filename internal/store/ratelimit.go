package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/segments/segments/internal/limits"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
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
	// KeepWarm is how often the limiter checks its connections and opens again those
	// that broke (keepWarmLoop); 0 means DefaultKeepWarm.
	KeepWarm time.Duration
}

// DefaultRateLimiterConns is the RateLimiterOptions.Conns of a limiter whose Conns is
// 0. A statement keeps its connection 0.3-1 ms as the load varies, so even if each of
// the 2,500 requests a second the server serves its cheapest pages at on 2 cores sent
// one (a steady caller sends one every 11, see RateLimiter), they would keep one to
// three busy.
const DefaultRateLimiterConns = 4

// A RateLimiter is a limits.Throttle whose token buckets live in PostgreSQL, so that
// every server instance on the database charges the same buckets: a caller's budget
// is the same whichever instance its requests reach, and no instance needs to know
// the others.
//
// A bucket is its row (table rate_limit_buckets) and, in each instance that charges
// it, a reserve: points the instance took from the row and has not spent yet. A
// request whose cost the reserve holds is paid from it, in memory, with no
// statement. Otherwise one statement on the bucket's row (takeSQL) refills the row by
// the time elapsed since its last charge (the database's clock, so instances' clocks
// do not matter), caps it so that the row and the reserve together hold at most the
// capacity, and, if the row holds what the request still needs (its cost less the
// reserve), takes that plus a chunk more, as much of it as the row holds: the chunk
// is the new reserve. So a caller spending steadily sends one statement every
// chunk's worth of requests (1 in 11 at the defaults) instead of one per request.
// Buckets only contend on their own row, and an instance sends at most one statement
// per bucket at a time: a caller who hammers the API waits on its own bucket, never
// on another's.
//
// With one instance, decisions are the database's alone would be: a request is
// refused exactly when the row's balance plus the reserve is below its cost, and its
// status reports the row's balance as of the last statement, refilled since and
// capped, plus the reserve. With several, a caller's budget seen by one instance
// lacks at most the reserves the others hold, each at most a chunk: min(10 × the
// request's cost, capacity / 20), that is at the defaults (10,000 points, 500 a
// second) a second of refill, 5% of the bucket. A reserve no request used for
// reserveIdle goes back to its row (one message for all such buckets, by a loop the
// store's Close stops, after giving back every reserve), so a caller who moves
// between instances loses nothing lasting; a crash loses at most the chunks its
// instance held. At most maxReserves buckets have a reserve at once: past that, the
// reserves are given back and the buckets start anew.
//
// A refusal is also remembered in the instance for as long as it surely holds (a
// bucket's points only grow by its refill, and other instances can only take more),
// and at most reserveIdle (others may give back reserves it did not count), so that a
// throttled caller who keeps retrying is refused without asking the database again,
// at most once a second.
//
// The limiter charges on connections of its own (Options.Conns), not the store's
// pool: a charge runs before its request, while the requests already running may
// hold every connection of the pool for seconds (counts of a large workspace). On
// the pool, charges waited for those requests, past Options.Timeout, and every
// request was then served unthrottled: the limiter went away exactly under the load
// it exists for.
//
// When the database does not answer within Options.Timeout, Take fails and the
// request is served: the limiter fails open, and the reserve the statement would have
// spent stays the bucket's. It exists to share capacity fairly, not to guard
// correctness; every request is still bounded by the per-request limits (maximum
// cost, request timeout, statement timeout), and a request that gets past a slow
// database's limiter meets the same database right after. Failing closed would turn
// any hiccup of the database into every caller's 429.
type RateLimiter struct {
	db   *bun.DB // its own connections (the store's Close closes them)
	opts RateLimiterOptions
	log  *slog.Logger // the store's

	mu       sync.Mutex
	refused  map[bucketKey]lowBucket
	reserves map[bucketKey]*reserve
	// evicted are reserves taken out of reserves, to be given back by the loop
	// (giveBackLoop), which kick wakes.
	evicted     []returned
	kick        chan struct{}
	maxReserves int // maxReserves, but for tests
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

// A reserve is what an instance knows of a bucket besides its row, and the points it
// holds of it.
type reserve struct {
	points float64 // taken from the row, not spent yet
	// row is the row's balance after the last statement, answered at rowAt; known
	// is false until a statement answered.
	row   float64
	rowAt time.Time
	known bool
	used  time.Time // when a request last charged the bucket
	// busy, while a statement on the row is in flight, is closed when it answers;
	// the other requests of the bucket wait for it rather than send their own.
	busy chan struct{}
}

// returned is a reserve to give back to its row.
type returned struct {
	key    bucketKey
	points float64
}

// maxRemembered bounds the refusals a RateLimiter remembers; past it, it forgets
// them all (they are only a shortcut).
const maxRemembered = 10_000

// maxReserves bounds the buckets with a reserve in a RateLimiter; past it, the
// reserves not in use are given back.
const maxReserves = 10_000

// reserveIdle is how long a reserve no request uses is kept.
const reserveIdle = time.Second

// chunk is the most points a charge of cost takes beyond it, as the reserve: 10
// requests' worth, so that one statement pays for 11 of a steady caller's requests,
// and at most a twentieth of the bucket, what the other instances may not see.
func (l *RateLimiter) chunk(cost int) float64 {
	return min(10*float64(cost), float64(l.opts.Capacity)/20)
}

// NewRateLimiter returns a RateLimiter on s's database, with connections of its own
// that s's Close closes, after it gave the reserves back.
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
	if opts.KeepWarm <= 0 {
		opts.KeepWarm = DefaultKeepWarm
	}
	db := s.ownPool(opts.Conns)
	// Its connections stay open, however long idle or old, and are checked every
	// opts.KeepWarm (warm, keepWarmLoop).
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	l := &RateLimiter{db: db, opts: opts, log: s.log,
		refused: map[bucketKey]lowBucket{}, reserves: map[bucketKey]*reserve{}, kick: make(chan struct{}, 1), maxReserves: maxReserves}
	if err := l.warm(context.Background(), warmTimeout); err != nil {
		l.log.Warn("rate limiter: connections not opened ahead; the first charges open them", "err", err)
	}
	s.goBackground(l.giveBackLoop)
	s.goBackground(l.keepWarmLoop)
	return l, nil
}

// warmTimeout bounds how long NewRateLimiter waits for its connections to open.
const warmTimeout = 10 * time.Second

// DefaultKeepWarm is how often a limiter's connections are checked and those found
// broken opened again (keepWarmLoop, RateLimiterOptions.KeepWarm): within the idle
// timeouts of NATs, load balancers and firewalls (AWS's NLB 350 s, Azure's 4
// minutes), which drop a connection silent for longer without a word to either end.
const DefaultKeepWarm = time.Minute

// keepWarmLoop keeps the connections that warm opened open and working, outside any
// charge's timeout: every RateLimiterOptions.KeepWarm it warms them again, pinging
// each and opening a new one for each that fails. Without it, a connection that a
// NAT's idle timeout or PostgreSQL's restart left dead was found so by a charge,
// which then failed open waiting for it or opening another.
func (l *RateLimiter) keepWarmLoop(ctx context.Context) {
	tick := time.NewTicker(l.opts.KeepWarm)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := l.warm(ctx, warmTimeout); err != nil && ctx.Err() == nil {
			l.log.Warn("rate limiter: connections not opened ahead; the first charges open them", "err", err)
		}
	}
}

// warm opens the limiter's connections before its first charge, and they stay open
// (NewRateLimiter): a charge never pays for opening one. Opening one (a backend
// forked, SCRAM's key derivation on both sides) took 0.1-0.4 s at the median and
// up to 0.9 s on the 2-core machine loaded by other work (no race detector), past
// Options.Timeout: a charge that opened a connection failed, and its request was
// served unthrottled, at start, after 5 minutes idle, and as each connection was
// replaced every 30 minutes, as the pools' connections are, the more so the busier
// the server (TestRateLimitFailsOpen's first charge, under load). A connection that
// breaks (PostgreSQL restarted) is opened again by the next charge, which may then
// fail open: the database was down, unless keepWarmLoop opened it first. A
// connection that does not open now is left to the first charges, as before, and
// logged.
func (l *RateLimiter) warm(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Each taken and pinged at once, so that each is another connection; one whose
	// ping failed is closed as it goes back, and the second round opens its
	// replacement.
	var errs []error
	for range 2 {
		conns := make([]*sql.Conn, l.opts.Conns)
		errs = make([]error, l.opts.Conns)
		broken := atomic.Bool{}
		var wg sync.WaitGroup
		for i := range conns {
			wg.Go(func() {
				if conns[i], errs[i] = l.db.DB.Conn(ctx); errs[i] == nil {
					if err := conns[i].PingContext(ctx); err != nil {
						broken.Store(true)
					}
				}
			})
		}
		wg.Wait()
		for _, c := range conns {
			if c != nil {
				c.Close() // back to the pool, which keeps it, or closes it if broken
			}
		}
		if !broken.Load() {
			break
		}
	}
	return errors.Join(errs...)
}

var _ limits.Throttle = (*RateLimiter)(nil)

// availSQL is a bucket's balance in takeSQL's update: its row (b) as it was, refilled
// by the time since its last charge, and capped so that the row and the reserve the
// instance holds (?5) hold at most the capacity (?3).
const availSQL = `least(?3::float8 - ?5::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * ?4::float8)`

// takeSQL charges one bucket in one statement. Its arguments: workspace, bucket,
// what the request needs from the row (its cost less the reserve), capacity, restore
// rate (points per second), the reserve the instance holds, the chunk.
//
// The row source sets the workspace for row-level security (app.workspace_id, for
// this statement's transaction only) before the row is inserted or the conflicting
// row updated, so that the statement passes the table's policy (migration
// 20261129000003) as the application's role whether or not its context carries the
// workspace for the store's own prefix (tenant.go); both name the same workspace.
// In the update, every expression reads the row as it was: availSQL is written out
// each time since SQL cannot name it there. A transaction that started earlier but
// locked the row later must not move updated_at back (which would refill twice):
// hence the greatest. A new row starts full: availSQL of a row that is not there.
const takeSQL = `
INSERT INTO rate_limit_buckets AS b (workspace_id, bucket, tokens, updated_at, granted, taken)
SELECT set_config('app.workspace_id', ?0::bigint::text, true)::bigint, ?1, n.avail - n.taken, now(), n.granted, n.taken
  FROM (SELECT a.avail, a.avail >= ?2 AS granted,
               CASE WHEN a.avail >= ?2 THEN ?2 + least(?6::float8, a.avail - ?2) ELSE 0 END AS taken
          FROM (SELECT ?3::float8 - ?5::float8 AS avail) AS a) AS n
ON CONFLICT (workspace_id, bucket) DO UPDATE SET
    granted = ` + availSQL + ` >= ?2,
    taken = CASE WHEN ` + availSQL + ` >= ?2 THEN ?2 + least(?6::float8, ` + availSQL + ` - ?2) ELSE 0 END,
    tokens = ` + availSQL + `
        - CASE WHEN ` + availSQL + ` >= ?2 THEN ?2 + least(?6::float8, ` + availSQL + ` - ?2) ELSE 0 END,
    updated_at = greatest(b.updated_at, now())
RETURNING b.tokens, b.granted, b.taken,
    CASE WHEN b.granted THEN 0 ELSE (?2 - b.tokens) / ?4::float8 END AS wait_seconds`

// Take charges cost points to bucket (of the request's workspace). See RateLimiter.
func (l *RateLimiter) Take(ctx context.Context, bucket string, cost int) (limits.Status, error) {
	ws, ok := l.opts.Workspace(ctx)
	if !ok {
		return limits.Status{}, errors.New("store: rate limiter: the request has no workspace")
	}
	cost = max(cost, 0)
	key := bucketKey{ws, storedBucket(bucket)}
	// Most requests are answered from memory, and need no timer for the database.
	if st, answered, err := l.fromMemory(key, cost); answered {
		return st, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	for {
		if st, answered, err := l.fromMemory(key, cost); answered {
			return st, err
		}
		l.mu.Lock()
		r := l.reserveOf(key)
		now := time.Now()
		if r.known && r.points >= float64(cost) { // refilled since fromMemory looked
			l.mu.Unlock()
			continue
		}
		if busy := r.busy; busy != nil {
			l.mu.Unlock()
			select {
			case <-busy:
				continue
			case <-ctx.Done():
				return limits.Status{}, fmt.Errorf("store: rate limiter: %w", ctx.Err())
			}
		}
		// The statement spends the whole reserve, or gives it back when it refuses
		// or fails: no other request may spend it meanwhile.
		held := r.points
		r.points, r.used, r.busy = 0, now, make(chan struct{})
		l.mu.Unlock()
		return l.charge(ctx, key, r, cost, held)
	}
}

// maxBucketBytes is the longest bucket name rate_limit_buckets holds (its CHECK).
const maxBucketBytes = 300

// storedBucket is the name under which bucket is stored: itself, or, for a name that
// PostgreSQL's text cannot hold as it is (empty, a NUL, invalid UTF-8, or longer than
// the table allows), "sha256:" and its digest, which no other name stores under. The
// name comes from the caller's credential (a session's sub): bun writes a string with
// a NUL into the SQL as an error marker, and the charge then failed, the request served
// unthrottled (limits fail open), and an array's strings lose their NULs, so that the
// reserve given back went to another bucket.
func storedBucket(bucket string) string {
	if bucket != "" && len(bucket) <= maxBucketBytes && utf8.ValidString(bucket) && !strings.Contains(bucket, "\x00") {
		return bucket
	}
	sum := sha256.Sum256([]byte(bucket))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// fromMemory answers a charge of cost to key without the database, if it can
// (answered): a refusal remembered (stillLow), or the cost paid from the reserve.
func (l *RateLimiter) fromMemory(key bucketKey, cost int) (st limits.Status, answered bool, err error) {
	if st, ok := l.stillLow(key, cost); ok {
		return st, true, limits.ErrThrottled
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reserveOf(key)
	if !r.known || r.points < float64(cost) {
		return limits.Status{}, false, nil
	}
	now := time.Now()
	r.points -= float64(cost)
	r.used = now
	return l.status(l.balance(r, now), 0), true, nil
}

// reserveOf returns key's reserve, a new one if it has none. l.mu must be held.
func (l *RateLimiter) reserveOf(key bucketKey) *reserve {
	if r, ok := l.reserves[key]; ok {
		return r
	}
	if len(l.reserves) >= l.maxReserves {
		l.evictLocked(time.Time{})
	}
	r := &reserve{}
	l.reserves[key] = r
	return r
}

// charge sends the statement that charges cost to key's row, which held of its
// points are already in r's instance (r.busy is set, r.points claimed).
func (l *RateLimiter) charge(ctx context.Context, key bucketKey, r *reserve, cost int, held float64) (limits.Status, error) {
	var row struct {
		Tokens      float64 `bun:"tokens"`
		Granted     bool    `bun:"granted"`
		Taken       float64 `bun:"taken"`
		WaitSeconds float64 `bun:"wait_seconds"`
	}
	start := time.Now()
	err := l.db.NewRaw(takeSQL, key.ws, key.bucket, float64(cost)-held, l.opts.Capacity, l.opts.RestoreRate, held, l.chunk(cost)).Scan(ctx, &row)
	l.mu.Lock()
	close(r.busy)
	r.busy = nil
	if err != nil {
		// Served unthrottled: the reserve stays the bucket's.
		r.points += held
		l.mu.Unlock()
		return limits.Status{}, fmt.Errorf("store: rate limiter: %w", err)
	}
	r.row, r.rowAt, r.known = row.Tokens, time.Now(), true
	if row.Granted {
		r.points += held + row.Taken - float64(cost)
	} else {
		r.points += held
	}
	st := l.status(row.Tokens+r.points, row.WaitSeconds)
	l.mu.Unlock()
	if row.Granted {
		l.forget(key)
		return st, nil
	}
	l.remember(key, row.Tokens+held, start)
	return st, limits.ErrThrottled
}

// balance is what r's bucket holds at now as the instance sees it: the row's balance
// after the last statement, refilled since, and the reserve, at most the capacity.
// l.mu must be held.
func (l *RateLimiter) balance(r *reserve, now time.Time) float64 {
	return min(float64(l.opts.Capacity), r.row+now.Sub(r.rowAt).Seconds()*l.opts.RestoreRate+r.points)
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
// holds fewer than cost points. Recently: within reserveIdle, since the refusal did
// not count the reserves other instances held, which go back to the row once idle.
func (l *RateLimiter) stillLow(key bucketKey, cost int) (limits.Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	low, ok := l.refused[key]
	if !ok {
		return limits.Status{}, false
	}
	since := time.Since(low.at)
	tokens := low.tokens + since.Seconds()*l.opts.RestoreRate
	if tokens >= float64(l.opts.Capacity) || since > reserveIdle {
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

// evictLocked takes out of l.reserves the reserves no statement is using and no
// request used since before (every one for a zero before), and queues their points
// for giveBackLoop. l.mu must be held.
func (l *RateLimiter) evictLocked(before time.Time) {
	evicted := false
	for key, r := range l.reserves {
		if r.busy != nil || !before.IsZero() && !r.used.Before(before) {
			continue
		}
		delete(l.reserves, key)
		if r.points > 0 {
			l.evicted = append(l.evicted, returned{key, r.points})
			evicted = true
		}
	}
	if evicted && before.IsZero() {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// giveBackLoop gives the reserves that sat idle for reserveIdle back to their rows,
// and those evicted past maxReserves as soon as they are, until ctx (the store's
// background) ends; then it gives back every reserve.
func (l *RateLimiter) giveBackLoop(ctx context.Context) {
	tick := time.NewTicker(reserveIdle / 2)
	defer tick.Stop()
	for {
		before := time.Time{}
		select {
		case <-ctx.Done():
		case <-l.kick:
			before = time.Now().Add(-reserveIdle)
		case now := <-tick.C:
			before = now.Add(-reserveIdle)
		}
		l.mu.Lock()
		l.evictLocked(before)
		evicted := l.evicted
		l.evicted = nil
		l.mu.Unlock()
		if len(evicted) > 0 {
			// Not ctx: at Close, it has ended, and the reserves still go back.
			gctx, cancel := context.WithTimeout(context.Background(), l.opts.Timeout)
			if err := l.giveBack(gctx, evicted); err != nil {
				l.log.Warn("rate limiter: unused points not given back to their buckets", "buckets", len(evicted), "err", err)
			}
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// giveBack adds reserves' points to their rows, refilled first and capped at the
// capacity, in one message: a statement for each workspace, after the setting that
// row-level security checks the workspace by (the policy reads it once a statement,
// so one statement cannot write several workspaces' rows). A row that is gone is a
// full bucket already.
func (l *RateLimiter) giveBack(ctx context.Context, reserves []returned) error {
	type batch struct {
		buckets []string
		points  []float64
	}
	byWS := map[int64]*batch{}
	var order []int64
	for _, r := range reserves {
		b := byWS[r.key.ws]
		if b == nil {
			b = &batch{}
			byWS[r.key.ws] = b
			order = append(order, r.key.ws)
		}
		b.buckets = append(b.buckets, r.key.bucket)
		b.points = append(b.points, r.points)
	}
	var q strings.Builder
	var args []any
	for _, ws := range order {
		q.WriteString(`SELECT set_config('app.workspace_id', ?::bigint::text, true);
UPDATE rate_limit_buckets AS b
   SET tokens = least(?::float8, b.tokens + greatest(0, extract(epoch FROM now() - b.updated_at)::float8) * ?::float8 + v.points),
       updated_at = greatest(b.updated_at, now())
  FROM unnest(?::text[], ?::float8[]) AS v(bucket, points)
 WHERE b.workspace_id = ? AND b.bucket = v.bucket;
`)
		args = append(args, ws, l.opts.Capacity, l.opts.RestoreRate, pgdialect.Array(byWS[ws].buckets), pgdialect.Array(byWS[ws].points), ws)
	}
	_, err := l.db.NewRaw(q.String(), args...).Exec(ctx)
	return err
}
