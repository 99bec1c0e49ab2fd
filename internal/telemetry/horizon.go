package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segments/segments/internal/store"
)

// DefaultOldTransactionAge is the age from which the server logs a transaction
// holding the change feed back (TransactionWatchOptions.WarnAfter).
const DefaultOldTransactionAge = time.Minute

// TransactionWatch looks, every few seconds, for the transactions of the PostgreSQL
// cluster that hold the change feed's horizon back (store.HeldTransactions): any
// transaction with an ID, in any database of the cluster, holds every workspace's
// feed back for as long as it runs. The server's own transactions are bounded by its
// roles' timeouts; an operator's BEGIN left open in psql, in any database, is not. It
// exports the oldest one's age as segments_oldest_transaction_age_seconds and logs
// a warning for each one older than WarnAfter, once a minute at most.
//
// It looks on its own interval, never on a request's path nor at a scrape's: a
// scrape reads what the last look saw, aged by the time since.
type TransactionWatch struct {
	store *store.Store
	log   *slog.Logger
	opts  TransactionWatchOptions
	desc  *prometheus.Desc

	mu sync.Mutex
	// ok is false until a look succeeds, and after one that failed: the gauge is
	// then absent rather than a stale or made-up 0.
	ok, failing bool
	// oldest is when the oldest transaction seen at the last look began; zero when
	// none was running.
	oldest time.Time
	// seen holds, for each transaction seen, when it began or, when the store's
	// role may not see its xact_start, when a look first saw it (a lower bound).
	seen map[heldKey]time.Time
	// warned holds when each transaction was last logged.
	warned map[heldKey]time.Time
}

type heldKey struct {
	pid int64
	xid string
}

// TransactionWatchOptions configure NewTransactionWatch.
type TransactionWatchOptions struct {
	// WarnAfter is the age from which a transaction is logged; 0 logs none.
	WarnAfter time.Duration
	// Interval is the time between two looks; 0 means 10 s.
	Interval time.Duration
}

// lookTimeout bounds one look: a PostgreSQL too busy to answer it in time is
// reported by the gauge's absence, not by a look piling up behind the last.
const lookTimeout = 5 * time.Second

// NewTransactionWatch returns a watch of the transactions s sees (Run starts it).
// Register it in the metrics' registry for the gauge.
func NewTransactionWatch(s *store.Store, log *slog.Logger, opts TransactionWatchOptions) *TransactionWatch {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	return &TransactionWatch{
		store: s, log: log, opts: opts,
		desc: prometheus.NewDesc("segments_oldest_transaction_age_seconds",
			"Age of the oldest transaction with a transaction ID in the PostgreSQL cluster (any database), which holds every workspace's change feeds (contactChanges, membershipChanges) back; 0 when there is none.",
			nil, nil),
		seen:   map[heldKey]time.Time{},
		warned: map[heldKey]time.Time{},
	}
}

// Run looks at once and then every Interval, until ctx is done.
func (w *TransactionWatch) Run(ctx context.Context) {
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		w.look(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// look reads the transactions holding the horizon back, updates the gauge and
// logs the old ones.
func (w *TransactionWatch) look(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, lookTimeout)
	defer cancel()
	held, err := w.store.HeldTransactions(ctx)
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		// Once per run of failures, and not for a shutdown's cancellation.
		if !w.failing && !errors.Is(ctx.Err(), context.Canceled) {
			w.log.Warn("could not read PostgreSQL's running transactions", "err", err)
		}
		w.ok, w.failing = false, true
		return
	}
	w.ok, w.failing = true, false
	w.oldest = time.Time{}
	seen := make(map[heldKey]time.Time, len(held))
	for _, t := range held {
		k := heldKey{t.PID, t.Xid}
		began := now.Add(-t.Age)
		if !t.Visible {
			// The first look that saw it: the transaction is at least this old.
			began = now
			if first, ok := w.seen[k]; ok {
				began = first
			}
		}
		seen[k] = began
		if w.oldest.IsZero() || began.Before(w.oldest) {
			w.oldest = began
		}
		age := now.Sub(began)
		if w.opts.WarnAfter <= 0 || age < w.opts.WarnAfter || now.Sub(w.warned[k]) < time.Minute {
			continue
		}
		w.warned[k] = now
		w.log.Warn("a transaction holds every workspace's change feed back", HeldTransactionAttrs(t, age)...)
	}
	w.seen = seen
	for k := range w.warned {
		if _, ok := seen[k]; !ok {
			delete(w.warned, k)
		}
	}
}

// Describe implements prometheus.Collector.
func (w *TransactionWatch) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

// Collect implements prometheus.Collector: the oldest transaction's age as of now.
func (w *TransactionWatch) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	ok, oldest := w.ok, w.oldest
	w.mu.Unlock()
	if !ok {
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = time.Since(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, age)
}

// HeldTransactionAttrs are the attributes of the log line of a transaction holding
// the change feed back, age old: whose it is and what it does, never its query, which
// may quote any tenant's data.
func HeldTransactionAttrs(t store.HeldTransaction, age time.Duration) []any {
	attrs := []any{"pid", t.PID, "xid", t.Xid, "database", t.Database, "user", t.User,
		"application_name", t.AppName, "state", t.State, "age", age.Round(time.Second)}
	if !t.Visible {
		attrs = append(attrs, "age_since", "first seen: the role may not read the session's xact_start (grant it pg_read_all_stats)")
	}
	return attrs
}
