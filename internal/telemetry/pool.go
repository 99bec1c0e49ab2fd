package telemetry

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector exports the statistics of a connection pool (sql.DB.Stats) at each
// scrape.
type poolCollector struct {
	db                                       *sql.DB
	maxOpen, open, inUse, idle               *prometheus.Desc
	waitCount, waitDuration                  *prometheus.Desc
	maxIdleClosed, idleTimeClosed, lifeClose *prometheus.Desc
}

func newPoolCollector(db *sql.DB) *poolCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("segments_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		db:             db,
		maxOpen:        desc("max_open_connections", "Most connections the pool may open."),
		open:           desc("open_connections", "Connections open, in use or idle."),
		inUse:          desc("in_use_connections", "Connections in use."),
		idle:           desc("idle_connections", "Idle connections."),
		waitCount:      desc("wait_count_total", "Times a request waited for a free connection."),
		waitDuration:   desc("wait_duration_seconds_total", "Time requests spent waiting for a free connection."),
		maxIdleClosed:  desc("max_idle_closed_total", "Connections closed because the pool held its most idle ones."),
		idleTimeClosed: desc("max_idle_time_closed_total", "Connections closed because they were idle too long."),
		lifeClose:      desc("max_lifetime_closed_total", "Connections closed because they reached their most lifetime."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waitCount, c.waitDuration, c.maxIdleClosed, c.idleTimeClosed, c.lifeClose} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.Stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.maxOpen, s.MaxOpenConnections)
	gauge(c.open, s.OpenConnections)
	gauge(c.inUse, s.InUse)
	gauge(c.idle, s.Idle)
	counter(c.waitCount, float64(s.WaitCount))
	counter(c.waitDuration, s.WaitDuration.Seconds())
	counter(c.maxIdleClosed, float64(s.MaxIdleClosed))
	counter(c.idleTimeClosed, float64(s.MaxIdleTimeClosed))
	counter(c.lifeClose, float64(s.MaxLifetimeClosed))
}
