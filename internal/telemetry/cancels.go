package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/segments/segments/internal/store"
)

// cancelCollector exports a store's counts of cancels (store.CancelCounts) at each
// scrape.
type cancelCollector struct {
	counts                 func() store.CancelCounts
	retried, dropped, sent *prometheus.Desc
}

func newCancelCollector(counts func() store.CancelCounts) *cancelCollector {
	return &cancelCollector{
		counts:  counts,
		retried: prometheus.NewDesc("segments_db_reads_retried_total", "Reads PostgreSQL stopped for a cancel not their own (their request alive, statement_timeout not passed), sent once more.", nil, nil),
		dropped: prometheus.NewDesc("segments_db_cancel_dropped_connections_total", "Connections closed instead of reused because PostgreSQL had not dealt with a cancelled statement's cancel request within 500 ms.", nil, nil),
		sent:    prometheus.NewDesc("segments_db_cancel_requests_sent_total", "Cancel requests the store sent for statements whose request ended: at once for a deadline or a shutdown, after 100 ms for a client gone (none when the statement returned by then). Not counted: those pgx sends itself, through a pooler (PgBouncer) and when it closes a connection.", nil, nil),
	}
}

func (c *cancelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.retried
	ch <- c.dropped
	ch <- c.sent
}

func (c *cancelCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.counts()
	ch <- prometheus.MustNewConstMetric(c.retried, prometheus.CounterValue, float64(n.ReadsRetried))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n.ConnectionsDropped))
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(n.CancelsSent))
}
