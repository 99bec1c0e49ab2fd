package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// speed is how fast this machine ran a fixed amount of work right before a
// contender's run: the same statement in PostgreSQL and the same sort in Go, each
// the median of a few runs. This VM's speed changes by the hour and by the minute
// (a W6 request took 18.7-19.8 ms of PostgreSQL's CPU one morning, 25-28 ms that
// afternoon, for every contender alike), and a run's numbers say nothing of it
// without a measure of the machine taken beside them. It labels a run; it does not
// correct one: over 15 W6 runs it followed the PostgreSQL CPU per request of the
// run after it only loosely (correlation 0.22; bench/README.md).
type speed struct {
	PostgresMs float64 `json:"postgres_ms"` // speedStatement, median of speedRuns
	GoMs       float64 `json:"go_ms"`       // sorting speedSortLen int64s, median of speedRuns
}

// speedStatement is PostgreSQL's fixed work: a million rows made, hashed into 1,000
// groups and summed, in one backend (98-185 ms on this VM in the first full run). It reads no table, so
// the dataset and the buffers' state do not change it, and writes nothing: the
// series is made in the select list (ProjectSet), where generate_series in FROM
// keeps its million rows in a tuplestore, which spilled 14 MB to a temporary file
// (EXPLAIN (ANALYZE, BUFFERS): temp written=1709) and took 160-290 ms by the disk's
// state rather than the CPU's.
const speedStatement = `SELECT sum(n) FROM (
	SELECT count(*) AS n FROM (SELECT generate_series(1, 1000000) AS g) AS series GROUP BY g % 1000) AS groups`

const (
	speedRuns    = 3
	speedSortLen = 1 << 20
)

// probeSpeed measures the machine's speed (see speed) through db, on a machine
// otherwise idle: between the contenders' runs.
func probeSpeed(ctx context.Context, db *sql.DB) (speed, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return speed{}, err
	}
	defer conn.Close()
	// One backend, no JIT: the same plan on every machine and run. Reset before the
	// connection goes back to the pool, whatever happens in between.
	if _, err := conn.ExecContext(ctx, "SET max_parallel_workers_per_gather = 0; SET jit = off"); err != nil {
		return speed{}, err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "RESET max_parallel_workers_per_gather; RESET jit")
	pg, err := medianOf(func() error {
		var n int64
		return conn.QueryRowContext(ctx, speedStatement).Scan(&n)
	})
	if err != nil {
		return speed{}, err
	}
	xs := make([]int64, speedSortLen)
	goMs, _ := medianOf(func() error {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range xs {
			xs[i] = rng.Int64()
		}
		slices.Sort(xs)
		return nil
	})
	return speed{PostgresMs: pg, GoMs: goMs}, nil
}

// medianOf runs f speedRuns times and returns its median time in milliseconds.
func medianOf(f func() error) (float64, error) {
	var d []time.Duration
	for range speedRuns {
		start := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		d = append(d, time.Since(start))
	}
	return quantileMs(d, 0.5), nil
}

// probe records in rr the machine's speed before its run.
func (b *bench) probe(ctx context.Context, rr *repResult) error {
	sp, err := probeSpeed(ctx, b.db)
	if err != nil {
		return fmt.Errorf("the machine's speed: %w", err)
	}
	rr.Speed = &sp
	return nil
}

func (s *speed) String() string {
	if s == nil {
		return "not measured"
	}
	return fmt.Sprintf("PostgreSQL's fixed statement %.0f ms, Go's sort %.0f ms", s.PostgresMs, s.GoMs)
}
