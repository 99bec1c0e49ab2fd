package store

import (
	"context"
	"sync/atomic"
	"time"
)

// statisticsTTL is how long the store goes by what it last learned of the
// database's statistics. They change only when ANALYZE (autovacuum's, after a tenth
// of a table has changed) gives PostgreSQL new ones.
const statisticsTTL = time.Minute

// statistics is what the store learned of PostgreSQL's statistics at a time: the
// rows the planner expects of each workspace, and the most common workspaces' shares
// of each table (analyze.go; the large workspaces of large.go), and the trigrams of
// the search histogram (searchsample.go). They choose between plans of the same
// statement, and when to analyze, never a statement's rows.
type statistics struct {
	at      time.Time // when the store last tried to learn them
	learned time.Time // when PostgreSQL last answered (zero: never)
	// failures counts the attempts that failed in a row since (statisticsWarnAfter).
	failures int
	rows     workspaceRows
	sample   searchSample
}

// statisticsWarnAfter is how many attempts to learn the statistics must fail in a
// row (one a statisticsTTL) before the store warns that its plans go by old ones. A
// single failure is no news: the background work gives way to a TRUNCATE or a
// migration (queryStatistics) and the next minute's try succeeds.
const statisticsWarnAfter = 3

// failed returns what the store goes by once an attempt to learn the statistics
// failed at now: what it knew (known, or none), until the next try a statisticsTTL
// later.
func (known *statistics) failed(now time.Time) *statistics {
	next := &statistics{at: now, failures: 1}
	if known != nil {
		next.learned, next.rows, next.sample = known.learned, known.rows, known.sample
		next.failures = known.failures + 1
	}
	return next
}

// learnedStatistics holds the store's statistics and their reloading.
type learnedStatistics struct {
	known   atomic.Pointer[statistics]
	loading atomic.Bool
}

// statistics returns what the store last learned of the statistics (nothing before
// the first answer). When that is older than statisticsTTL, or there is none yet, it
// learns again in the background: no request waits for it, or sends a statement more
// for it.
//
// Open asks first, so that a server's first searches are already written as they
// will be (and a benchmark that records them records what the server sends from then
// on); a database not migrated yet has no answer, and the first search asks again.
func (s *Store) statistics() *statistics {
	known := s.stats.known.Load()
	if known == nil || time.Since(known.at) > statisticsTTL {
		s.loadStatistics(known)
	}
	if known == nil {
		return &statistics{}
	}
	return known
}

// learnStatistics brings the store's statistics up to date (queryStatistics) and
// waits for the answer.
func (s *Store) learnStatistics(ctx context.Context) {
	prev := s.stats.known.Load()
	if stats, err := s.queryStatistics(ctx, prev); err == nil {
		s.noteRelearned(prev)
		s.stats.known.Store(stats)
	}
}

// noteRelearned logs that the store learned the statistics again, when the tries
// before (prev's) had failed for long enough to be warned of.
func (s *Store) noteRelearned(prev *statistics) {
	if prev != nil && prev.failures >= statisticsWarnAfter {
		s.log.Info("the store learned PostgreSQL's statistics again", "failures", prev.failures)
	}
}

// loadStatistics brings the store's statistics up to date (queryStatistics) in a
// goroutine of its own, unless one is already at it. On failure the store goes on
// with what it knew (prev), until the next try a statisticsTTL later, and warns
// once statisticsWarnAfter tries in a row have failed: nothing else would tell an
// operator that the plans go by statistics from long ago, or by none.
func (s *Store) loadStatistics(prev *statistics) {
	if !s.stats.loading.CompareAndSwap(false, true) {
		return
	}
	s.goBackground(func(background context.Context) {
		defer s.stats.loading.Store(false)
		ctx, cancel := context.WithTimeout(background, 10*time.Second)
		defer cancel()
		stats, err := s.queryStatistics(ctx, prev)
		switch {
		case err != nil && background.Err() != nil:
			return // the store closes: not a failure of the database's
		case err != nil:
			stats = prev.failed(time.Now())
			if stats.failures >= statisticsWarnAfter {
				s.warnStatisticsFailed(stats, err)
			}
		default:
			s.noteRelearned(prev)
		}
		s.stats.known.Store(stats)
	})
}

// warnStatisticsFailed logs that the store could not learn the statistics, stats
// being what it goes by since: they choose between plans of the same statements,
// so old ones make requests slower, never wrong.
func (s *Store) warnStatisticsFailed(stats *statistics, err error) {
	learned := "never"
	if !stats.learned.IsZero() {
		learned = stats.at.Sub(stats.learned).Round(time.Second).String() + " ago"
	}
	s.log.Warn("the store cannot learn PostgreSQL's statistics; its plans go by the last it learned, which may make searches and pages slower",
		"failures", stats.failures, "learned", learned, "retry_in", statisticsTTL, "err", err)
}

// queryStatistics brings the statistics the store keeps up to date: it has the
// database copy a new histogram of the contacts' search text for the estimates of
// searches (searchpages.go), has the tables analyzed whose statistics underestimate
// a workspace's counters (noteCounted), and returns the workspaces' planned rows and
// shares, and the copy's trigrams (sent again only when the copy is not prev's). The
// functions it calls wait at most 100 ms for a lock, then fail (migration
// 20261206000001): nothing waits for them, and one waiting keeps what it has locked
// from a TRUNCATE or a migration that waits for it in turn.
func (s *Store) queryStatistics(ctx context.Context, prev *statistics) (*statistics, error) {
	// A copy that fails (a database in recovery cannot write) leaves the last one,
	// or none, where the walks read searchWalkFactor rows a page row: it only chooses
	// between two plans of the same search.
	_, _ = s.db.ExecContext(ctx, sampleContactSearch)
	rows, err := s.queryWorkspaceRows(ctx)
	if err != nil {
		return nil, err
	}
	// The workspaces the statistics underestimate, by the counters, are analyzed
	// (noteCounted); the statistics learned now are those from before.
	if counted, err := s.queryWorkspaceCounts(ctx); err == nil {
		s.noteCounted(rows, counted)
	}
	var known searchSample
	if prev != nil {
		known = prev.sample
	}
	sample, err := s.querySearchSample(ctx, known)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &statistics{at: now, learned: now, rows: rows, sample: sample}, nil
}

// sampleContactSearch has the database copy the histogram of the contacts' search
// text, when contacts were analyzed since its last copy (migration
// 20261202000002_contact_search_sample).
const sampleContactSearch = "SELECT segments_sample_contact_search()"
