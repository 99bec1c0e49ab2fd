package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segments/segments/internal/benchdata"
)

func slicesSort(ids []int64) { slices.Sort(ids) }

type report struct {
	Meta       meta              `json:"meta"`
	Contenders []string          `json:"contenders"`
	Dataset    datasetInfo       `json:"dataset"`
	Config     map[string]any    `json:"config"`
	Order      []string          `json:"workload_order"`
	Results    map[string]*wlRep `json:"workloads"`
	Ratios     []ratio           `json:"ratios"`
	// Checks are the targets that are not ratios of throughput or time.
	Checks   []check  `json:"checks"`
	Warnings []string `json:"warnings,omitempty"`
}

type meta struct {
	Date           string  `json:"date"`
	Note           string  `json:"note,omitempty"`
	CPU            string  `json:"cpu"`
	Cores          int     `json:"cores"`
	LoadAvgAtStart string  `json:"load_average_at_start"`
	Go             string  `json:"go"`
	PostgreSQL     string  `json:"postgresql"`
	SharedBuffers  string  `json:"shared_buffers"`
	Node           string  `json:"node"`
	PostGraphile   string  `json:"postgraphile"`
	Pgbench        string  `json:"pgbench"`
	Seconds        float64 `json:"seconds"`
}

type datasetInfo struct {
	Options     benchdata.Options `json:"options"`
	Contacts    int               `json:"contacts"`
	Segments    int               `json:"segments"`
	Memberships int64             `json:"memberships"`
	Reused      bool              `json:"reused"`
	LoadSeconds float64           `json:"load_seconds,omitempty"`
	LoadPhases  []loadPhase       `json:"load_phases,omitempty"`
	// ReindexSeconds is how long a reused dataset's written indexes took to rebuild
	// (rebuildWrittenIndexes).
	ReindexSeconds float64 `json:"reindex_seconds,omitempty"`
	// OtherContacts are the contacts of other workspaces in the same tables, which
	// make every table and index larger than the dataset's (otherContacts).
	OtherContacts int64 `json:"other_contacts,omitempty"`
	// Neighbours are the small workspaces asked for beside the dataset's
	// (--neighbours, benchdata.LoadNeighbours), whose contacts OtherContacts counts too.
	Neighbours int `json:"neighbours,omitempty"`
}

// unexpectedContacts are the other workspaces' contacts beyond the neighbours'.
func (d datasetInfo) unexpectedContacts() int64 {
	return d.OtherContacts - int64(d.Neighbours*benchdata.Neighbour.Contacts)
}

type loadPhase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// repResult is one contender's measurements in one repetition.
type repResult struct {
	Fixed       step    `json:"fixed_rate"`
	Max         step    `json:"max_within_slo"`
	Steps       []step  `json:"steps,omitempty"`
	ServerCPUms float64 `json:"server_cpu_ms"` // per request (W7, W11: per run)
	// PGCPUms is the CPU of PostgreSQL's client backends serving the contender's
	// connections (pgWatch), per request (W7, W11: per run): what the report calls its
	// PostgreSQL CPU, and its ratios use. PGAllCPUms is every PostgreSQL process's
	// (treeCPU), which results before 2026-12-07's attribution called postgres_cpu_ms.
	PGCPUms    float64 `json:"postgres_cpu_ms"`
	PGAllCPUms float64 `json:"postgres_all_cpu_ms"`
	// PGBackends are the contender's backends the run saw; PGBackendsEnded, those that
	// ended during it (pgUse).
	PGBackends      int     `json:"postgres_backends,omitempty"`
	PGBackendsEnded int     `json:"postgres_backends_ended,omitempty"`
	WALkB           float64 `json:"wal_kb,omitempty"` // WAL written per request (W7, W11: per run), walPosition
	RSSMiB          float64 `json:"rss_mib,omitempty"`
	PeakRSSMiB      float64 `json:"peak_rss_mib,omitempty"`
	// FixedPeakRSSMiB is the peak of the warm-up and the fixed-rate run alone: the same
	// load for every contender, where the search's peak is of the steps it ran above
	// the contender's capacity, which differ from one repetition to the next.
	FixedPeakRSSMiB float64 `json:"fixed_peak_rss_mib,omitempty"`
	WallSeconds     float64 `json:"wall_seconds,omitempty"` // W7, W11
	// Speed is the machine's, measured right before the run (probeSpeed).
	Speed *speed `json:"machine_speed,omitempty"`
}

// stat is a median with its range over the repetitions.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func statOf(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: m, Min: s[0], Max: s[len(s)-1]}
}

type contenderRep struct {
	Reps          []repResult `json:"reps"`
	MaxThroughput stat        `json:"max_throughput_rps"`
	P50           stat        `json:"p50_ms"`
	P99           stat        `json:"p99_ms"`
	SentP50       stat        `json:"sent_p50_ms"` // from the send (step.SentP50)
	FixedErrors   int         `json:"fixed_rate_errors"`
	ServerCPUms   stat        `json:"server_cpu_ms_per_request"`
	PGCPUms       stat        `json:"postgres_cpu_ms_per_request"` // its own backends' (repResult.PGCPUms)
	PGAllCPUms    stat        `json:"postgres_all_cpu_ms_per_request"`
	// PGOtherCPUms is all processes' less its own backends': the background
	// processes', the other connections', the postmaster's and its reaped children's.
	PGOtherCPUms stat    `json:"postgres_other_cpu_ms_per_request"`
	WALkB        stat    `json:"wal_kb_per_request"`
	TotalCPUms   stat    `json:"total_cpu_ms_per_request"`
	RSSMiB       stat    `json:"rss_mib"`
	PeakRSSMiB   float64 `json:"peak_rss_mib"`
	// PeakRSSReps is the runs' peak per repetition, whose highest is PeakRSSMiB: one
	// repetition's peak is a draw of the steps its search ran far past capacity, and
	// varied 2.7× between two builds on the same steps (bench/results/rssload-1207).
	PeakRSSReps     stat    `json:"peak_rss_mib_per_repetition"`
	FixedPeakRSSMiB stat    `json:"fixed_peak_rss_mib"`
	WallSeconds     stat    `json:"wall_seconds"`
	Statements      float64 `json:"statements_per_request"`
	// The machine's speed before the contender's runs (repResult.Speed).
	MachinePostgresMs stat `json:"machine_postgres_ms"`
	MachineGoMs       stat `json:"machine_go_ms"`
}

type wlRep struct {
	ID         string                   `json:"id"`
	Title      string                   `json:"title"`
	FixedRate  float64                  `json:"fixed_rate,omitempty"`
	Contenders map[string]*contenderRep `json:"contenders"`
	SQL        string                   `json:"sql"`
	// StatementsByPageSize is what our server sends for the workload's first request
	// at other page sizes (first: N), captured as the request itself is.
	StatementsByPageSize map[int]float64 `json:"statements_by_page_size,omitempty"`
}

type ratio struct {
	Workload string  `json:"workload"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Target   string  `json:"target"`
	// Goal is the target as a number the value must reach (at least; at most when
	// AtMost), 0 when the target is only to report.
	Goal   float64 `json:"goal,omitempty"`
	AtMost bool    `json:"at_most,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	// Unbounded counts the repetitions whose ratio has no bound: the other
	// contender sustained no rate within the SLO where ours did. Max leaves them
	// out (JSON has no infinity); the report writes the range's top as ∞.
	Unbounded int `json:"unbounded_reps,omitempty"`
}

// check is one of the targets beside the ratios: a latency in
// milliseconds, or statements per request that must not grow with the page.
type check struct {
	Workload string  `json:"workload"`
	Name     string  `json:"name"`
	Value    float64 `json:"value"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Unit     string  `json:"unit"`
	Target   string  `json:"target"`
	Met      bool    `json:"met"`
}

// postgresCPUMeaning says in results.json (config) what its postgres_cpu_ms is:
// results written before it have no such key, and their postgres_cpu_ms is every
// PostgreSQL process's.
const postgresCPUMeaning = "postgres_cpu_ms: the client backends of the contender's own connections (by application_name); " +
	"postgres_all_cpu_ms: every PostgreSQL process, background processes and the other contenders' connections included"

// pageSizes are the page sizes at which the capture counts our statements.
var pageSizes = []int{1, 10, 50, 100}

func newReport(c config, o benchdata.Options) *report {
	return &report{
		Meta:       meta{Date: time.Now().UTC().Format(time.RFC3339), Note: c.note},
		Contenders: c.contenders(),
		Dataset:    datasetInfo{Options: o},
		Config: map[string]any{"pool": c.pool, "pgbench_client_share": c.clientShare, "reps": c.reps, "w6_reps": c.repsOf("W6"), "step_seconds": c.stepDur.Seconds(), "warmup_seconds": c.warmup.Seconds(),
			"fixed_seconds": c.fixedDur.Seconds(), "slo_p99_ms": float64(c.slo) / 1e6, "fixed_rates": fixedRates, "variants": variants,
			"w6_steps_after_checkpoint": true, "peak_rss_per_workload": true,
			"rate_limit": c.rateLimit, "arrivals": "poisson", "postgres_cpu": postgresCPUMeaning},
		Results: map[string]*wlRep{},
	}
}

func (r *report) workload(w string) *wlRep {
	if x, ok := r.Results[w]; ok {
		return x
	}
	x := &wlRep{ID: w, Title: workloadTitles[w], Contenders: map[string]*contenderRep{}}
	r.Results[w] = x
	r.Order = append(r.Order, w)
	return x
}

func (w *wlRep) contender(c string) *contenderRep {
	if x, ok := w.Contenders[c]; ok {
		return x
	}
	x := &contenderRep{}
	w.Contenders[c] = x
	return x
}

func (w *wlRep) add(c string, rr repResult) {
	x := w.contender(c)
	x.Reps = append(x.Reps, rr)
}

func (w *wlRep) summarize() {
	for _, x := range w.Contenders {
		var mx, p50, p99, sentP50, srv, pg, pgAll, pgOther, tot, walkB, rssv, peak, fixedPeak, wall, speedPG, speedGo []float64
		x.FixedErrors = 0
		for _, r := range x.Reps {
			mx = append(mx, r.Max.Rate) // the highest offered rate sustained (search)
			p50 = append(p50, r.Fixed.P50)
			p99 = append(p99, r.Fixed.P99)
			sentP50 = append(sentP50, r.Fixed.SentP50)
			x.FixedErrors += r.Fixed.Errors
			srv = append(srv, r.ServerCPUms)
			pg = append(pg, r.PGCPUms)
			pgAll, pgOther = append(pgAll, r.PGAllCPUms), append(pgOther, r.PGAllCPUms-r.PGCPUms)
			tot = append(tot, r.ServerCPUms+r.PGCPUms)
			walkB = append(walkB, r.WALkB)
			rssv = append(rssv, r.RSSMiB)
			fixedPeak = append(fixedPeak, r.FixedPeakRSSMiB)
			wall = append(wall, r.WallSeconds)
			x.PeakRSSMiB = math.Max(x.PeakRSSMiB, r.PeakRSSMiB)
			peak = append(peak, r.PeakRSSMiB)
			if r.Speed != nil {
				speedPG, speedGo = append(speedPG, r.Speed.PostgresMs), append(speedGo, r.Speed.GoMs)
			}
		}
		x.MaxThroughput, x.P50, x.P99, x.SentP50 = statOf(mx), statOf(p50), statOf(p99), statOf(sentP50)
		x.ServerCPUms, x.PGCPUms, x.TotalCPUms, x.WALkB = statOf(srv), statOf(pg), statOf(tot), statOf(walkB)
		x.PGAllCPUms, x.PGOtherCPUms = statOf(pgAll), statOf(pgOther)
		x.RSSMiB, x.WallSeconds, x.FixedPeakRSSMiB, x.PeakRSSReps = statOf(rssv), statOf(wall), statOf(fixedPeak), statOf(peak)
		x.MachinePostgresMs, x.MachineGoMs = statOf(speedPG), statOf(speedGo)
	}
}

// ratioOf divides two contenders' medians; min and max pair the repetitions.
func ratioOf(a, b []float64) (v, lo, hi float64, unbounded int) {
	sa, sb := statOf(a), statOf(b)
	if sb.Median == 0 {
		return math.Inf(1), math.Inf(1), math.Inf(1), 0
	}
	v = sa.Median / sb.Median
	lo, hi = math.Inf(1), 0
	for i := range min(len(a), len(b)) {
		switch {
		case b[i] > 0:
			lo, hi = math.Min(lo, a[i]/b[i]), math.Max(hi, a[i]/b[i])
		case a[i] > 0:
			unbounded++
		}
	}
	return v, lo, hi, unbounded
}

func (r *report) computeRatios() {
	r.Ratios = nil
	get := func(w, c string, f func(repResult) float64) []float64 {
		x := r.Results[w]
		if x == nil || x.Contenders[c] == nil {
			return nil
		}
		var out []float64
		for _, rr := range x.Contenders[c].Reps {
			out = append(out, f(rr))
		}
		return out
	}
	tp := func(rr repResult) float64 { return rr.Max.Rate }
	cpu := func(rr repResult) float64 { return rr.ServerCPUms + rr.PGCPUms }
	cpuAll := func(rr repResult) float64 { return rr.ServerCPUms + rr.PGAllCPUms }
	wall := func(rr repResult) float64 { return rr.WallSeconds }
	add := func(w, name, target string, goal float64, atMost bool, a, b []float64) {
		if len(a) == 0 || len(b) == 0 {
			return
		}
		if statOf(b).Median == 0 {
			// The other sustained no rate within the SLO (PostGraphile on W8): the
			// ratio is unbounded, and the per-workload table says so.
			return
		}
		v, lo, hi, unbounded := ratioOf(a, b)
		rt := ratio{Workload: w, Name: name, Value: v, Min: lo, Max: hi, Target: target, Goal: goal, AtMost: atMost, Unbounded: unbounded}
		if goal > 0 {
			met := v >= goal
			if atMost {
				met = v <= goal
			}
			rt.Met = &met
		}
		r.Ratios = append(r.Ratios, rt)
	}
	pgTarget := map[string]float64{"W1": 2, "W3": 3, "W4": 10, "W5": 10, "W6": 1}
	floorTarget := map[string]float64{"W3": 0.5, "W4": 0.8, "W5": 0.8, "W6": 0.8}
	for _, w := range r.Order {
		if w == "W7" {
			add(w, "wall time ours / PostGraphile", "≤ 1×", 1, true, get(w, ours, wall), get(w, pgl, wall))
			add(w, "wall time ours / raw statement", "≤ 1.1×", 1.1, true, get(w, ours, wall), get(w, flr, wall))
			add(w, "wall time ours / our SQL replayed", "report", 0, false, get(w, ours, wall), get(w, flrOurs, wall))
			add(w, "wall time ours / base", "report", 0, false, get(w, ours, wall), get(w, base, wall))
			continue
		}
		if w == "W11" {
			add(w, "wall time ours / PostGraphile", "report", 0, false, get(w, ours, wall), get(w, pgl, wall))
			add(w, "wall time ours / SQL floor", "report", 0, false, get(w, ours, wall), get(w, flr, wall))
			add(w, "wall time ours / base", "report", 0, false, get(w, ours, wall), get(w, base, wall))
			continue
		}
		t := "report"
		if g := pgTarget[w]; g > 0 {
			t = fmt.Sprintf("≥ %g×", g)
		}
		add(w, "throughput ours / PostGraphile", t, pgTarget[w], false, get(w, ours, tp), get(w, pgl, tp))
		t = "report"
		if g := floorTarget[w]; g > 0 {
			t = fmt.Sprintf("≥ %g×", g)
		}
		add(w, "throughput ours / SQL floor", t, floorTarget[w], false, get(w, ours, tp), get(w, flr, tp))
		if w == "W6" {
			add(w, "CPU per request ours / PostGraphile", "< 1×", 1, true, get(w, ours, cpu), get(w, pgl, cpu))
			// The target is judged on the own backends' CPU (above), which leaves out the
			// WAL writer's, the checkpointer's and autovacuum's work the writes cause, and
			// ours and PostGraphile send different SQL: all processes' CPU is the check.
			add(w, "CPU per request ours / PostGraphile, all processes", "report", 0, false, get(w, ours, cpuAll), get(w, pgl, cpuAll))
		}
		// With --base: this build against the other, each the same way (none without).
		add(w, "throughput ours / base", "report", 0, false, get(w, ours, tp), get(w, base, tp))
		add(w, "CPU per request ours / base", "report", 0, false, get(w, ours, cpu), get(w, base, cpu))
	}
}

// computeChecks judges the targets that are not ratios: p50 at 100 req/s
// within 1 ms of the floor's on W1 and W3 (min and max pair the repetitions), W8
// under 50 ms (its p99 at the fixed rate), and statements per request constant in
// page size. The p50s are from the send: the target is about what a request costs
// the contender (no batching timer), and on an idle machine how late each load
// generator sends a request is its own clock's (vegeta's p50 0.6 ms late at 100
// req/s, Go's timers waking to the millisecond; pgbench's 0.1).
func (r *report) computeChecks() {
	r.Checks = nil
	for _, w := range []string{"W1", "W3"} {
		x := r.Results[w]
		if x == nil || x.Contenders[ours] == nil || x.Contenders[flr] == nil {
			continue
		}
		o, f := x.Contenders[ours], x.Contenders[flr]
		c := check{Workload: w, Name: fmt.Sprintf("p50 at %g/s from the send, ours − SQL floor", x.FixedRate), Unit: "ms", Target: "≤ 1 ms",
			Value: o.SentP50.Median - f.SentP50.Median, Min: math.Inf(1), Max: math.Inf(-1)}
		for i := range min(len(o.Reps), len(f.Reps)) {
			d := o.Reps[i].Fixed.SentP50 - f.Reps[i].Fixed.SentP50
			c.Min, c.Max = math.Min(c.Min, d), math.Max(c.Max, d)
		}
		c.Met = c.Value <= 1
		r.Checks = append(r.Checks, c)
	}
	if x := r.Results["W8"]; x != nil && x.Contenders[ours] != nil {
		p99 := x.Contenders[ours].P99
		r.Checks = append(r.Checks, check{Workload: "W8", Name: fmt.Sprintf("p99 at %g/s, %s memberships", x.FixedRate, countText(r.Dataset.Memberships)),
			Value: p99.Median, Min: p99.Min, Max: p99.Max, Unit: "ms", Target: "< 50 ms", Met: p99.Median < 50})
	}
	for _, w := range r.Order {
		by := r.Results[w].StatementsByPageSize
		if len(by) == 0 {
			continue
		}
		c := check{Workload: w, Name: "statements per request at first: " + sizesText(by), Min: math.Inf(1), Max: math.Inf(-1),
			Unit: "statements", Target: "the same at every size"}
		for _, n := range by {
			c.Min, c.Max = math.Min(c.Min, n), math.Max(c.Max, n)
		}
		c.Value, c.Met = c.Max, c.Min == c.Max
		r.Checks = append(r.Checks, c)
	}
}

// countText writes a count of millions as the issue does ("5M").
func countText(n int64) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%gM", float64(n)/1e6)
	}
	return strconv.FormatInt(n, 10)
}

// sizesText lists the page sizes of a count in order: "1, 10, 50 and 100".
func sizesText(by map[int]float64) string {
	var ns []string
	for _, n := range slices.Sorted(maps.Keys(by)) {
		ns = append(ns, strconv.Itoa(n))
	}
	if len(ns) < 2 {
		return strings.Join(ns, "")
	}
	return strings.Join(ns[:len(ns)-1], ", ") + " and " + ns[len(ns)-1]
}

func (r *report) write(dir string) error {
	r.computeRatios()
	r.computeChecks()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ratios.svg"), []byte(r.svg()), 0o644)
}

func f1(s stat) string {
	if s.Max == 0 && s.Median == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s)", num(s.Median), num(s.Min), num(s.Max))
}

func num(v float64) string {
	switch {
	case math.IsInf(v, 0) || math.IsNaN(v):
		return "∞"
	// Each threshold where the next precision's rounding reaches it: 99.98 is
	// "100", not "100.0".
	case v >= 99.95:
		return fmt.Sprintf("%.0f", v)
	case v >= 9.995:
		return fmt.Sprintf("%.1f", v)
	case v >= 0.9995:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func (r *report) markdown() string {
	var s strings.Builder
	m := r.Meta
	fmt.Fprintf(&s, "# Benchmark: ours vs PostGraphile vs the SQL floor\n\n")
	fmt.Fprintf(&s, "Run %s by `make bench` (cmd/segbench), %s.", m.Date, durationText(m.Seconds))
	if m.Note != "" {
		fmt.Fprintf(&s, " **%s**", m.Note)
	}
	fmt.Fprintf(&s, "\n\nMachine: %d cores (%s), load average at start %s. Go %s, PostgreSQL %s (shared_buffers %s), "+
		"PostGraphile %s on Node %s, %s. The load generator (vegeta, open model) runs on the same cores.\n\n",
		m.Cores, m.CPU, m.LoadAvgAtStart, m.Go, m.PostgreSQL, m.SharedBuffers, m.PostGraphile, m.Node, m.Pgbench)
	d := r.Dataset
	fmt.Fprintf(&s, "Dataset: %d contacts, %d segments, %d memberships (ten segments of %d, the rest skewed), seed %d",
		d.Contacts, d.Segments, d.Memberships, d.Options.BigSize, d.Options.Seed)
	if d.Reused {
		fmt.Fprintf(&s, "; loaded by an earlier run, the indexes of %s rebuilt in %.1f s (the write workloads leave them half empty).\n\n",
			strings.Join(writtenTables, ", "), d.ReindexSeconds)
	} else {
		fmt.Fprintf(&s, "; loaded in %.1f s (`segments bench-data`: COPY, indexes and constraints after, counters backfilled, VACUUM ANALYZE).\n\n", d.LoadSeconds)
	}
	if d.Neighbours > 0 {
		n := benchdata.Neighbour.Fill()
		fmt.Fprintf(&s, "**Beside it, %d small workspaces** (`--neighbours`; %d contacts, %d segments and %d memberships each), as a service of many businesses holds them: "+
			"PostgreSQL's statistics see the dataset's workspace as one of many, and the plans it keeps without knowing the workspace expect a small one.\n\n",
			d.Neighbours, n.Contacts, n.Segments, n.Memberships)
	}
	if n := d.unexpectedContacts(); n > 0 {
		fmt.Fprintf(&s, "**The database also holds %d contacts of other workspaces**: every table and index is larger than the dataset's, "+
			"so these numbers are not those of the one-workspace database the benchmark describes.\n\n", n)
	}
	clients := "pgbench as many clients"
	if share, _ := r.Config["pgbench_client_share"].(float64); share > 0 {
		clients = fmt.Sprintf("pgbench at most as many clients: as many as the offered load keeps busy %g%% of the time, "+
			"since its clients take turns at the schedule where the servers' pools reuse their most recent connection", 100*share)
	}
	reps := fmt.Sprintf("%v times per contender", r.Config["reps"])
	if w6, ok := r.Config["w6_reps"]; ok && w6 != r.Config["reps"] && r.Results["W6"] != nil {
		reps += fmt.Sprintf(" (W6 %v times: its CPU per request varies from minute to minute by more than what tells the contenders apart)", w6)
	}
	w6Steps := ""
	if after, _ := r.Config["w6_steps_after_checkpoint"].(bool); after && r.Results["W6"] != nil {
		w6Steps = "; W6's steps each start right after a checkpoint, as its warm-up does"
	}
	// contenderOrder balances per cycle: n repetitions for an even n, 2n for an odd n.
	cycle := len(r.Contenders)
	if cycle%2 == 1 {
		cycle *= 2
	}
	fmt.Fprintf(&s, "Each contender has %v database connections (%s); each workload ran %s, the contenders in a balanced order (each first, and right after each other, equally often per cycle of %d repetitions); "+
		"each time a %gs warm-up, a %gs run at the fixed rate, then an SLO search (p99 ≤ %g ms and no errors; %gs steps, "+
		"doubling then bisecting to within 10%%%s). Numbers are medians (min–max).\n\n",
		r.Config["pool"], clients, reps, cycle, r.Config["warmup_seconds"], r.Config["fixed_seconds"], r.Config["slo_p99_ms"], r.Config["step_seconds"], w6Steps)
	if r.Results["W6"] != nil {
		fmt.Fprintf(&s, "W6 gives each request %d contacts, %d apart from a random first, and %d of %d segments made for the run, %d apart "+
			"from a random first: two requests share a segment with probability %.3f.\n\n",
			w6Contacts, contactStep, w6Segments, w6Scratch, segmentStep, w6SharedSegments())
	}
	if on, _ := r.Config["rate_limit"].(bool); on {
		s.WriteString("Our server charges every request to its API key's rate-limit bucket, as a default `segments serve` does " +
			"(one statement on the limiter's own connections), at a capacity no run drains: it never throttles.\n\n")
	} else {
		s.WriteString("Our server ran without the rate limiter (`--rate-limit=false`): a default `segments serve` charges every request " +
			"to its bucket, one statement more a request.\n\n")
	}
	s.WriteString(r.stallsText())
	if pg, goMs := r.machineSpeed(); pg.Median > 0 {
		fmt.Fprintf(&s, "The machine's speed before each contender's run (\"The machine's speed\", below): PostgreSQL's fixed statement "+
			"%s ms, Go's fixed sort %s ms.\n\n", f1(pg), f1(goMs))
	}

	s.WriteString("## Ratios against the targets\n\n| workload | ratio | measured | target | met |\n|---|---|---|---|---|\n")
	for _, rt := range r.Ratios {
		met := ""
		if rt.Met != nil {
			met = metText(*rt.Met)
		}
		top := num(rt.Max)
		if rt.Unbounded > 0 {
			top = "∞"
		}
		fmt.Fprintf(&s, "| %s | %s | %s× (%s–%s) | %s | %s |\n", rt.Workload, rt.Name, num(rt.Value), num(rt.Min), top, rt.Target, met)
	}
	if len(r.Checks) > 0 {
		s.WriteString("\n## The issue's other targets\n\nLatencies at the fixed rate, medians (min–max; a difference's pair the " +
			"repetitions). The p50s against the floor's count from each request's send, not its scheduled start (the table per " +
			"workload has both): on an idle machine, how late a request is sent is its load generator's clock's, not the " +
			"contender's. Statements: what our server sent for the workload's first request with its page of 50 made each " +
			"size, counted by the recording proxy.\n\n| workload | what | measured | target | met |\n|---|---|---|---|---|\n")
		for _, c := range r.Checks {
			// Milliseconds to the microsecond, so that a difference just over 1 ms does
			// not read as 1.00.
			v := fmt.Sprintf("%.3f (%.3f–%.3f) ms", c.Value, c.Min, c.Max)
			if c.Unit == "statements" {
				v = fmt.Sprintf("%s–%s", num(c.Min), num(c.Max))
				if c.Min == c.Max {
					v = num(c.Max)
				}
			}
			fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", c.Workload, c.Name, v, c.Target, metText(c.Met))
		}
	}
	s.WriteString("\n![ratios](ratios.svg)\n\n")

	// Config from results.json of an earlier run has no such key: its peaks were since
	// the server started.
	peakText := "peak: the most it held since it started (VmHWM), over every workload run before"
	if per, _ := r.Config["peak_rss_per_workload"].(bool); per {
		peakText = "peak: the most it held during the workload's runs (VmHWM, reset before each run)"
	}
	s.WriteString("## Per workload\n\nMax throughput: the highest offered rate, requests per second arriving on a Poisson " +
		"timeline for every contender (as pgbench --rate schedules the floor's), that met the SLO. Latency and CPU: at the fixed rate. " +
		"Latency counts from each request's scheduled start, as the SLO's does; the p50 from the send leaves out how late the load " +
		"generator sent each request. CPU per successful request, from /proc: our server or Node, plus PostgreSQL's client backends that " +
		"served the contender's own connections (told by their application_name; those opened during the run count whole); beside it, " +
		"every PostgreSQL process's, and in parentheses what of that was not the contender's backends: background processes (autovacuum, " +
		"the checkpointer, the WAL writer), the other contenders' idle connections, segbench's own queries (W10's sync among them), which " +
		"land in whichever run they meet. The ratios of CPU per request use the contender's own (W6's also all processes', beside). Statements: the SQL " +
		"messages per request, counted by a recording proxy: a round trip each, which may hold several statements (ours send " +
		"each with its workspace's setting, and a transaction's first with its BEGIN). WAL: what PostgreSQL wrote to its log per successful request " +
		"at the fixed rate, by its WAL insert position (the whole database's). RSS: the server process after its runs; " + peakText +
		"; at the fixed rate: the peak of its warm-up and fixed-rate run (median; it starts from what the process still held " +
		"from the runs before, which Go returns to the system over minutes), the same load for every contender, where the peak " +
		"of the runs is that of the steps the search ran above the contender's capacity (up to twice the rate it last sustained, " +
		"thousands of requests refused 503 and as many connections open), which differ between repetitions; per repetition: the median " +
		"and range of each repetition's peak of the runs, which vary by chance even where two searches ran the same steps: compare " +
		"two builds' memory at the fixed rate, not by their peaks.\n\n")
	s.WriteString("| workload | contender | max req/s | p50 ms | p50 from the send ms | p99 ms | CPU ms/req server + PostgreSQL | PostgreSQL ms/req, all processes (not its backends) | WAL kB/req | statements/req | RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, w := range r.Order {
		x := r.Results[w]
		if w == "W7" || w == "W11" { // timed whole, below
			continue
		}
		for _, c := range r.Contenders {
			cr := x.Contenders[c]
			if cr == nil {
				continue
			}
			errs := ""
			if cr.FixedErrors > 0 {
				errs = fmt.Sprintf(" (%d errors)", cr.FixedErrors)
			}
			fmt.Fprintf(&s, "| %s %s @ %g/s | %s | %s | %s | %s | %s%s | %s + %s | %s | %s | %s | %s |\n", w, x.Title, x.FixedRate, c,
				f1(cr.MaxThroughput), f1(cr.P50), f1(cr.SentP50), f1(cr.P99), errs, num(cr.ServerCPUms.Median), num(cr.PGCPUms.Median),
				pgAllText(cr), walText(cr, 1), statementsText(cr.Statements), rssText(cr))
		}
	}
	if x := r.Results["W7"]; x != nil {
		s.WriteString("\n### W7: one bulk assignment of 10,000 contacts × 100 segments (1M new pairs)\n\n" +
			"Our API accepts at most 1,000 contacts × 100 segments per request (the product limit, unchanged), so ours is ten " +
			"such requests back to back; PostGraphile sends one request to its bulk function; the floor is the same INSERT as " +
			"one raw statement, and the SQL of our ten requests replayed over one connection.\n\n" +
			"| contender | wall s | CPU ms server + PostgreSQL | PostgreSQL ms, all processes (not its backends) | WAL MB | statements |\n|---|---|---|---|---|---|\n")
		for _, c := range []string{ours, pgl, flr, flrOurs, base} {
			if cr := x.Contenders[c]; cr != nil {
				fmt.Fprintf(&s, "| %s | %s | %s + %s | %s | %s | %s |\n", c, f1(cr.WallSeconds), num(cr.ServerCPUms.Median), num(cr.PGCPUms.Median),
					pgAllText(cr), walText(cr, 1024), statementsText(cr.Statements))
			}
		}
	}
	if x := r.Results["W11"]; x != nil {
		fmt.Fprintf(&s, "\n### W11: a contact sync, %d upsertContacts of %d contacts (%d new and %d changed each)\n\n"+
			"Ours sends the %d requests back to back; PostGraphile, which has no upsert, the same contacts to a function of "+
			"one INSERT ... ON CONFLICT that neither validates phones nor skips unchanged rows (bench/sql/postgraphile-setup.sql); "+
			"the floor replays the SQL of our %d requests over one connection, as our server's role.\n\n"+
			"| contender | wall s | contacts/s | CPU ms server + PostgreSQL | PostgreSQL ms, all processes (not its backends) | WAL MB | statements/request |\n|---|---|---|---|---|---|---|\n",
			upsertRequests, upsertBatch, upsertBatch/2, upsertBatch/2, upsertRequests, upsertRequests)
		for _, c := range []string{ours, pgl, flr, base} {
			if cr := x.Contenders[c]; cr != nil {
				rate := "–"
				if cr.WallSeconds.Median > 0 {
					rate = num(upsertRequests * upsertBatch / cr.WallSeconds.Median)
				}
				fmt.Fprintf(&s, "| %s | %s | %s | %s + %s | %s | %s | %s |\n", c, f1(cr.WallSeconds), rate, num(cr.ServerCPUms.Median), num(cr.PGCPUms.Median),
					pgAllText(cr), walText(cr, 1024), statementsText(cr.Statements))
			}
		}
	}
	s.WriteString(r.speedText())
	s.WriteString("\n## The SQL our server sends, per workload\n\nOne request each (the floor replays these; sql/ beside this report holds them).\n\n")
	for _, w := range r.Order {
		if sq := r.Results[w].SQL; sq != "" {
			fmt.Fprintf(&s, "### %s: %s\n\n```sql\n%s```\n\n", w, r.Results[w].Title, sq)
		}
	}
	return s.String()
}

// stallsText says how many of each workload's SLO steps that failed on their tail
// (p50 within the SLO; a step past saturation fails on its p50, and the watch's
// wake-ups are late there anyway) met a stall of the machine (machineWatch), so
// that a reader can tell those from a contender's own tail, and how many steps ran
// again after a pause longer than the SLO (search).
func (r *report) stallsText() string {
	sloMs, _ := r.Config["slo_p99_ms"].(float64)
	slo := time.Duration(sloMs * float64(time.Millisecond))
	var parts []string
	for _, w := range r.Order {
		var failed, stalled, again int
		for _, c := range r.Results[w].Contenders {
			for _, rr := range c.Reps {
				for _, st := range rr.Steps {
					if paused(st, slo) {
						again++
					}
					if st.failedOnTail(slo) {
						failed++
						if st.metStall() {
							stalled++
						}
					}
				}
			}
		}
		if failed > 0 {
			part := fmt.Sprintf("%s %d of %d", w, stalled, failed)
			if again > 0 {
				part += fmt.Sprintf(" (%d run again)", again)
			}
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("The machine's stalls: segbench watches for pauses of the whole machine (a goroutine that sleeps 5 ms at a time "+
		"wakes late; under load, also by the CPU's queue) and for its disk's writes taking long (the mean over any 100 ms, "+
		"/proc/diskstats), and a step that failed on its tail while the machine paused for longer than the SLO runs again. "+
		"Steps that failed on their tail (p50 within the SLO), and of those the ones that met a late wake-up over %d ms or "+
		"writes over %d ms each: %s.\n\n", lateWakeMs, slowWriteMs, strings.Join(parts, ", "))
}

// pgAllText is a contender's PostgreSQL CPU of every process, with what of it was
// not its own backends' in parentheses (medians each), "–" where it was not
// measured: only on segbench's own PostgreSQL.
func pgAllText(c *contenderRep) string {
	if c.PGAllCPUms.Max == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s)", num(c.PGAllCPUms.Median), num(c.PGOtherCPUms.Median))
}

// walText is a contender's WAL in kB divided by per (1024: MB), "–" where it was
// not measured: with PostgreSQL's CPU, only on segbench's own PostgreSQL.
func walText(c *contenderRep, per float64) string {
	if c.PGAllCPUms.Max == 0 {
		return "–"
	}
	return num(c.WALkB.Median / per)
}

// metText is a target's verdict as the report's tables write it.
func metText(met bool) string {
	if met {
		return "yes"
	}
	return "**no**"
}

// statementsText is a contender's statements per request, "–" where none were
// counted (the build of --base is not captured).
func statementsText(n float64) string {
	if n == 0 {
		return "–"
	}
	return num(n)
}

func rssText(c *contenderRep) string {
	if c.RSSMiB.Median == 0 {
		return "–"
	}
	peak := fmt.Sprintf("peak %.0f", c.PeakRSSMiB)
	if p := c.PeakRSSReps; p.Max > p.Min { // results.json of an earlier run has none
		peak = fmt.Sprintf("peak %.0f, per repetition %s", c.PeakRSSMiB, f1(p))
	}
	if c.FixedPeakRSSMiB.Median > 0 {
		return fmt.Sprintf("%.0f (%s; %.0f at the fixed rate)", c.RSSMiB.Median, peak, c.FixedPeakRSSMiB.Median)
	}
	return fmt.Sprintf("%.0f (%s)", c.RSSMiB.Median, peak)
}

func durationText(sec float64) string {
	if sec == 0 {
		return "in progress"
	}
	return "taking " + (time.Duration(sec) * time.Second).String()
}

// svg draws the ratios as horizontal bars on a log scale, with the target of each.
func (r *report) svg() string {
	const w, rowH, left, right, top = 900, 34, 330, 40, 50
	h := top + rowH*len(r.Ratios) + 50
	lo, hi := 0.01, 100.0
	x := func(v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return left + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*float64(w-left-right)
	}
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", w, h)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="24" font-size="16" font-weight="bold">Ours relative to PostGraphile and to the SQL floor (log scale; | = target)</text>`+"\n")
	for _, t := range []float64{0.01, 0.1, 1, 10, 100} {
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#666">%g×</text>`+"\n",
			x(t), top-8, x(t), h-40, x(t), h-24, t)
	}
	for i, rt := range r.Ratios {
		y := top + i*rowH
		color := "#4a7bd0"
		if rt.Met != nil {
			color = map[bool]string{true: "#3a9a4a", false: "#d0503a"}[*rt.Met]
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%s %s</text>`+"\n", left-8, y+18, rt.Workload, escape(rt.Name))
		x0, x1 := x(1), x(rt.Value)
		fmt.Fprintf(&s, `<rect x="%.1f" y="%d" width="%.1f" height="20" fill="%s"/>`+"\n", math.Min(x0, x1), y+4, math.Max(1, math.Abs(x1-x0)), color)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" fill="#222">%s×</text>`+"\n", math.Max(x0, x1)+4, y+18, num(rt.Value))
		if rt.Goal > 0 {
			fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="2"/>`+"\n", x(rt.Goal), y, x(rt.Goal), y+28)
		}
	}
	fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888"/>`+"\n", x(1), top-8, x(1), h-40)
	s.WriteString("</svg>\n")
	return s.String()
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// machineSpeed is the machine's speed over the whole run: the probes before every
// contender's run of every workload.
func (r *report) machineSpeed() (postgresMs, goMs stat) {
	var pg, gos []float64
	for _, w := range r.Order {
		for _, c := range r.Results[w].Contenders {
			for _, rr := range c.Reps {
				if rr.Speed != nil {
					pg, gos = append(pg, rr.Speed.PostgresMs), append(gos, rr.Speed.GoMs)
				}
			}
		}
	}
	return statOf(pg), statOf(gos)
}

// speedText is the report's section on the machine's speed, per workload and
// contender: what tells a slow day, or a slow quarter of an hour for one
// contender, from a slow build.
func (r *report) speedText() string {
	if pg, _ := r.machineSpeed(); pg.Median == 0 {
		return ""
	}
	var s strings.Builder
	s.WriteString("\n## The machine's speed\n\nBefore each contender's run, on the otherwise idle machine, segbench timed " +
		"the same work in PostgreSQL (a million rows made and hashed into 1,000 groups, in one backend) and in Go " +
		"(sorting 2^20 integers), medians of three: milliseconds, medians over the repetitions (min–max), PostgreSQL's / Go's. " +
		"Compare them with another run's before comparing its numbers: this VM's speed changes by the hour.\n\n| workload |")
	for _, c := range r.Contenders {
		s.WriteString(" " + c + " |")
	}
	s.WriteString("\n|---|" + strings.Repeat("---|", len(r.Contenders)) + "\n")
	for _, w := range r.Order {
		fmt.Fprintf(&s, "| %s |", w)
		for _, c := range r.Contenders {
			cr := r.Results[w].Contenders[c]
			if cr == nil || cr.MachinePostgresMs.Median == 0 {
				s.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&s, " %s / %s |", f1(cr.MachinePostgresMs), f1(cr.MachineGoMs))
		}
		s.WriteString("\n")
	}
	return s.String()
}
