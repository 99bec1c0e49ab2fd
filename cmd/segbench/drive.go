package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// step is one run at one offered rate.
type step struct {
	Rate       float64 `json:"rate"`       // offered, requests per second
	Throughput float64 `json:"throughput"` // successful requests per second
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
	Clients    int     `json:"clients,omitempty"` // pgbench's (the floor's); the servers' pools choose their own
	// pg is PostgreSQL's CPU while the step was measured, with the count of requests
	// that completed meanwhile (pgCPUFor), from a runner that measures them itself
	// (pgbenchRunner, whose warm-up is part of its run); zero from the others, whose
	// caller measures around the run.
	pg       pgUse
	pgCPUFor int
	// The machine's stalls while the step ran (machineWatch, when the runner is
	// watched): its longest pause, and its disk's worst mean time per write over
	// 100 ms.
	PauseMs        float64 `json:"machine_pause_ms,omitempty"`
	DiskMsPerWrite float64 `json:"disk_ms_per_write,omitempty"`
	// SentP50 is the median latency from each request's send rather than its
	// scheduled start: the contender's own, without the load generator's lateness,
	// which P50 and P99 include (LagP50, LagP99: how late the requests were sent).
	SentP50 float64 `json:"sent_p50_ms,omitempty"`
	LagP50  float64 `json:"send_lag_p50_ms,omitempty"`
	LagP99  float64 `json:"send_lag_p99_ms,omitempty"`
}

func (s step) pass(slo time.Duration) bool {
	return s.Errors == 0 && s.Requests > 0 && s.P99 <= ms(slo)
}

// runner runs one contender's workload at a given rate for a given time, open-model:
// requests start on schedule whether or not earlier ones have answered, and latency
// counts from the scheduled start, so that a load generator that falls behind (the
// machine busy or paused) does not hide the wait from the latencies.
type runner interface {
	run(ctx context.Context, rate float64, d time.Duration) (step, error)
}

// httpRunner drives a GraphQL server with vegeta.
type httpRunner struct {
	url    string
	header http.Header
	mu     sync.Mutex
	next   func() []byte // the body of the next request
}

func (h *httpRunner) run(ctx context.Context, rate float64, d time.Duration) (step, error) {
	tr := func(t *vegeta.Target) error {
		h.mu.Lock()
		body := h.next()
		h.mu.Unlock()
		t.Method, t.URL, t.Body, t.Header = http.MethodPost, h.url, body, h.header
		return nil
	}
	// A transport of its own, whose connections are closed after the run: an
	// attacker's idle connections otherwise outlive it, and an overloaded step opens
	// thousands of them (a run once ran out of file descriptors this way).
	transport := &http.Transport{MaxIdleConnsPerHost: 10000, DisableCompression: true}
	defer transport.CloseIdleConnections()
	att := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: transport, Timeout: 15 * time.Second}), vegeta.MaxBody(-1))
	due := poissonArrivals(rate, d)
	pacer := arrivalPacer(due)
	var ts timings
	s := step{Rate: rate}
	start := time.Now()
	for res := range att.Attack(tr, pacer, d, "") {
		if ctx.Err() != nil {
			att.Stop()
		}
		s.Requests++
		ts.add(sendLag(start, due, res), res.Latency)
		bad := ""
		switch {
		case res.Error != "":
			bad = res.Error
		case res.Code != http.StatusOK:
			bad = fmt.Sprintf("HTTP %d: %.200s", res.Code, res.Body)
		case bytes.Contains(res.Body, []byte(`"errors"`)), bytes.Contains(res.Body, []byte(`"userErrors":[{`)):
			bad = fmt.Sprintf("%.300s", res.Body)
		}
		if bad != "" {
			s.failed(bad)
		}
	}
	s.fromTimings(ts, d, start)
	return s, ctx.Err()
}

// sendLag is how late vegeta sent res after its scheduled start. vegeta times a
// request from its send (res.Timestamp) and leaves out how late that was: past
// saturation, or through a pause of the machine, its pacer and workers wait for a
// CPU, and the p99 of the latencies from the send stayed within the SLO through a
// pause of 116 ms (the sends' p99 85 ms late; pgbench counts from the schedule).
// The k-th request (from 0) is due due[k] after the attack began (arrivalPacer), a
// moment after start: never negative.
func sendLag(start time.Time, due []time.Duration, res *vegeta.Result) time.Duration {
	if res.Seq >= uint64(len(due)) {
		return 0
	}
	return max(0, res.Timestamp.Sub(start.Add(due[res.Seq])))
}

// poissonArrivals returns when each request of a run at rate for d is due, from the
// run's start: a Poisson process (exponential gaps, of mean 1/rate), as pgbench
// --rate schedules the floor's transactions. Every contender's requests arrive so:
// the floor's load generator, pgbench, offers no other, and it is how requests
// from many independent callers arrive. (The servers' came evenly spaced, where
// the floor's came in Poisson bursts, which at service times of 5-17 ms lowered
// the rate the floor sustained within the SLO, by 0.90× to 0.44× in a simulation,
// and so inflated "ours / SQL floor".) The timeline depends only on rate and d,
// so every HTTP contender's run at a rate meets the same bursts.
func poissonArrivals(rate float64, d time.Duration) []time.Duration {
	if rate <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(math.Float64bits(rate), uint64(d)))
	var due []time.Duration
	for t := time.Duration(rng.ExpFloat64() / rate * float64(time.Second)); t < d; t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second)) {
		due = append(due, t)
	}
	return due
}

// arrivalPacer is a vegeta.Pacer that sends the k-th request (from 0) due[k] after
// the attack began, at once when it is late, and stops after the last.
type arrivalPacer []time.Duration

// Pace implements vegeta.Pacer.
func (due arrivalPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= uint64(len(due)) {
		return 0, true
	}
	return due[hits] - elapsed, false
}

// Rate implements vegeta.Pacer: the mean rate of the arrivals.
func (due arrivalPacer) Rate(time.Duration) float64 {
	if len(due) == 0 {
		return 0
	}
	return float64(len(due)) / due[len(due)-1].Seconds()
}

// failed counts a request that failed, keeping the first one's reason.
func (s *step) failed(reason string) {
	s.Errors++
	if s.FirstError == "" {
		s.FirstError = reason
	}
}

// timings are a step's requests' times: how late each was sent, and its time from
// the send. Its latency, from its scheduled start, is the two added.
type timings struct {
	sent, lag []time.Duration
}

func (t *timings) add(lag, fromSend time.Duration) {
	t.sent = append(t.sent, fromSend)
	t.lag = append(t.lag, lag)
}

// len is the number of requests timed.
func (t *timings) len() int { return len(t.sent) }

// setLatencies sets s's latencies from ts.
func (s *step) setLatencies(ts timings) {
	latency := make([]time.Duration, ts.len())
	for i := range latency {
		latency[i] = ts.lag[i] + ts.sent[i]
	}
	s.P50, s.P99 = quantileMs(latency, 0.50), quantileMs(latency, 0.99)
	// quantileMs sorts its list: the sums are taken first.
	s.SentP50 = quantileMs(ts.sent, 0.50)
	s.LagP50, s.LagP99 = quantileMs(ts.lag, 0.50), quantileMs(ts.lag, 0.99)
}

// fromTimings sets s's throughput over the time since start, at least d, and its
// latencies from ts.
func (s *step) fromTimings(ts timings, d time.Duration, start time.Time) {
	elapsed := max(d, time.Since(start))
	s.Throughput = float64(s.Requests-s.Errors) / elapsed.Seconds()
	s.setLatencies(ts)
}

// narrowMiss reports whether a failed step missed the SLO only by its tail: no
// errors, and a p99 within twice the SLO.
func narrowMiss(s step, slo time.Duration) bool {
	return s.pass(2 * slo)
}

// paused reports whether s failed on its tail (its p50 within the SLO) while the
// machine paused for longer than the SLO. The watch cannot tell a pause of the
// machine from its CPU's queue: at a rate past saturation it woke 20-100 ms late in
// the run that showed it (2026-12-05 09:37), its goroutine waiting behind
// vegeta's in segbench's own process, and such steps fail on their p50.
func paused(s step, slo time.Duration) bool {
	return s.failedOnTail(slo) && s.PauseMs > ms(slo)
}

// failedOnTail reports whether s failed the SLO with its p50 within it: on its
// slowest requests, not past saturation.
func (s step) failedOnTail(slo time.Duration) bool {
	return !s.pass(slo) && s.P50 <= ms(slo)
}

// What a step's log line and the report call a stall of the machine: a late
// wake-up of the watch over lateWakeMs (a pause of that length pushes a W6 request
// of 30 ms past the SLO), and 100 ms in which the disk's writes took over
// slowWriteMs each (0.3 to 1 ms is usual; in the lab's stalls, 5 to 25).
const (
	lateWakeMs  = 20
	slowWriteMs = 5
)

// metStall reports whether s met a stall of the machine.
func (s step) metStall() bool {
	return s.PauseMs > lateWakeMs || s.DiskMsPerWrite > slowWriteMs
}

// stalls describes, for a step's log line, the machine's stalls that the step met.
func (s step) stalls() string {
	var out string
	if s.PauseMs > lateWakeMs {
		out += fmt.Sprintf(" (the watch woke %.0f ms late)", s.PauseMs)
	}
	if s.DiskMsPerWrite > slowWriteMs {
		out += fmt.Sprintf(" (disk writes %.0f ms each)", s.DiskMsPerWrite)
	}
	return out
}

// ms is d in milliseconds, as the report writes times.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func quantileMs(lat []time.Duration, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(math.Ceil(q*float64(len(lat)))) - 1
	return ms(lat[max(0, i)])
}

// pgbenchRunner runs SQL scripts with pgbench: the SQL floor.
type pgbenchRunner struct {
	bin     string
	env     []string // PGHOST, PGPORT, ...
	clients int      // the pool size: the most clients a run uses
	// share is the share of its time a client may be busy at the offered rate
	// (clientsFor); zero runs every run with the pool size.
	share   float64
	scripts []string // script files, chosen at random with equal weight
	mode    string   // pgbench's -M: simple, or prepared for pgbenchPrepared's scripts
	dir     string   // for logs
	// watchPG, when set, starts watching PostgreSQL's CPU, the floor's backends' and
	// every process's (pgWatch), and returns what stops the watch and says what they
	// used.
	watchPG func() (stop func() pgUse)
	// service is the shortest median latency of this runner's runs so far (each
	// client's first transaction left out): about one transaction's own time,
	// without queueing (zero before the first run).
	service time.Duration
}

// clientsFor is the number of pgbench clients of a run at this rate: as many as the
// offered load keeps busy p.share of the time or more, at least one, at most the
// pool size, which the first run (before any latency is known) uses. pgbench's
// clients take turns at the schedule, so at a low rate all eight backends went cold
// between their transactions (W8 at 2/s: 6.7-9.1 ms of PostgreSQL CPU per request
// with eight clients, 4.0-5.8 with one, measured), while the servers' pools
// (database/sql and node-postgres both hand out the most recently used idle
// connection) keep one or two connections busy and hot. At a share of 5%, one
// client waits behind another for at most about 5% of transactions, so the floor's
// latency is not one of queueing either.
func (p *pgbenchRunner) clientsFor(rate float64) int {
	if p.service <= 0 || p.share <= 0 {
		return p.clients
	}
	busy := rate * p.service.Seconds() / p.share
	return min(p.clients, max(1, int(math.Ceil(busy))))
}

// observe learns the service time from the median latency of a run's transactions,
// its warm-up's included (W8's warm-up at 2/s is most of its run), except each
// client's first (first: firstOfEachClient of txs).
func (p *pgbenchRunner) observe(txs []pgbenchTx, first map[int]int) {
	var lat []time.Duration
	for _, t := range txs {
		if !t.failed && t.n != first[t.client] {
			lat = append(lat, t.latency)
		}
	}
	if len(lat) == 0 {
		return
	}
	if d := time.Duration(quantileMs(lat, 0.5) * float64(time.Millisecond)); p.service <= 0 || d < p.service {
		p.service = d
	}
}

// pgbenchWarmup is the start of a pgbench run at this rate that is not measured.
// Every run is a new pgbench with new connections, and a new backend's first
// transaction loads its catalog caches: on this machine 11-27 ms where the next ones
// take 1-3. Eight clients' first transactions are 1.6% of a 5-s run at 100/s, so
// they were its p99, and the floor failed the SLO at rates it sustains with ease;
// the servers' pooled connections are warm. The warm-up lasts a second, or as long
// as each client takes to run about three transactions at low rates (at most 10 s);
// measure also leaves out each client's first transaction, should it come later.
func pgbenchWarmup(rate float64, clients int) time.Duration {
	secs := math.Ceil(3 * float64(clients) / max(rate, 0.1))
	return time.Duration(min(max(secs, 1), 10)) * time.Second
}

func (p *pgbenchRunner) run(ctx context.Context, rate float64, d time.Duration) (step, error) {
	logDir, err := os.MkdirTemp(p.dir, "pgbench-")
	if err != nil {
		return step{}, err
	}
	defer os.RemoveAll(logDir)
	secs := max(1, int(math.Round(d.Seconds())))
	clients := p.clientsFor(rate)
	warm := pgbenchWarmup(rate, clients)
	args := []string{"-n", "-M", p.mode, "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)),
		"-R", strconv.FormatFloat(rate, 'f', 1, 64), "-T", strconv.Itoa(int(warm/time.Second) + secs),
		"-l", "--log-prefix", filepath.Join(logDir, "log")}
	for _, s := range p.scripts {
		args = append(args, "-f", s+"@1")
	}
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	s := step{Rate: rate, Clients: clients}
	// The run is measured from the end of the warm-up by our clock for secs. pgbench's
	// clock starts once its clients have connected, a little later, so the window
	// falls inside its run (whose first transaction may come much later at a low
	// rate: the window cannot start from it). PostgreSQL's CPU is read over the same
	// window, for the requests that completed in it, while pgbench's backends live:
	// none exits (and is counted in ticks) meanwhile.
	t0 := time.Now()
	from, to := t0.Add(warm), t0.Add(warm+time.Duration(secs)*time.Second)
	var cpuFrom, cpuTo time.Time
	if err = cmd.Start(); err == nil {
		if p.watchPG != nil && sleepCtx(ctx, time.Until(from)) {
			stop := p.watchPG()
			cpuFrom = time.Now()
			ok := sleepCtx(ctx, time.Until(to))
			if pg := stop(); ok {
				s.pg, cpuTo = pg, time.Now()
			}
		}
		err = cmd.Wait()
	}
	if err != nil {
		s.Errors, s.FirstError = 1, fmt.Sprintf("pgbench: %v: %.500s", err, out.String())
	}
	if m := regexpFind(out.String(), "number of failed transactions: "); m != "" {
		if n, _ := strconv.Atoi(strings.Fields(m)[0]); n > 0 {
			s.Errors += n
			if s.FirstError == "" {
				s.FirstError = "pgbench: " + strings.TrimSpace(firstLineOf(m))
			}
		}
	}
	var txs []pgbenchTx
	files, _ := filepath.Glob(filepath.Join(logDir, "log*"))
	for _, f := range files {
		if fh, err := os.Open(f); err == nil {
			txs = append(txs, readPgbenchLog(fh)...)
			fh.Close()
		}
	}
	first := firstOfEachClient(txs)
	s.measure(txs, first, from, to)
	if !cpuTo.IsZero() {
		s.pgCPUFor = completedBetween(txs, cpuFrom, cpuTo)
	}
	p.observe(txs, first)
	return s, ctx.Err()
}

// pgbenchTx is one transaction of pgbench's per-transaction log.
type pgbenchTx struct {
	client, n       int // the client, and its transaction's number
	scheduled, done time.Time
	latency         time.Duration // from the scheduled start
	lag             time.Duration // from the scheduled start to the actual one
	failed          bool
}

// readPgbenchLog reads pgbench's per-transaction log (-l). Its lines are client_id
// transaction_no time script_no time_epoch time_us [schedule_lag], where time (µs)
// counts from the scheduled start under -R (or says "failed" or "skipped"),
// time_epoch.time_us is when the transaction completed, and schedule_lag (µs, under
// -R) is how late it started.
func readPgbenchLog(r io.Reader) []pgbenchTx {
	var txs []pgbenchTx
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 {
			continue
		}
		sec, err1 := strconv.ParseInt(fl[4], 10, 64)
		usec, err2 := strconv.ParseInt(fl[5], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		client, err1 := strconv.Atoi(fl[0])
		n, err2 := strconv.Atoi(fl[1])
		if err1 != nil || err2 != nil {
			continue
		}
		t := pgbenchTx{client: client, n: n, done: time.Unix(sec, usec*1000), failed: fl[2] == "failed" || fl[2] == "skipped"}
		if !t.failed {
			us, err := strconv.ParseInt(fl[2], 10, 64)
			if err != nil {
				continue
			}
			t.latency = time.Duration(us) * time.Microsecond
		}
		if len(fl) >= 7 {
			if us, err := strconv.ParseInt(fl[6], 10, 64); err == nil {
				t.lag = time.Duration(us) * time.Microsecond
			}
		}
		t.scheduled = t.done.Add(-t.latency)
		txs = append(txs, t)
	}
	return txs
}

// measure fills s from the transactions scheduled in [from, to), except each
// client's first (first: firstOfEachClient of txs); failures elsewhere in the run
// (pgbench's summary) are already in s.Errors.
func (s *step) measure(txs []pgbenchTx, first map[int]int, from, to time.Time) {
	var ts timings
	for _, t := range txs {
		switch {
		case t.scheduled.Before(from), !t.scheduled.Before(to), t.n == first[t.client]:
		case t.failed:
			s.Errors++
		default:
			ts.add(t.lag, t.latency-t.lag)
		}
	}
	s.Requests = ts.len() + s.Errors
	s.Throughput = float64(ts.len()) / to.Sub(from).Seconds()
	s.setLatencies(ts)
}

// firstOfEachClient maps each client to the number of its first transaction.
func firstOfEachClient(txs []pgbenchTx) map[int]int {
	first := map[int]int{}
	for _, t := range txs {
		if n, ok := first[t.client]; !ok || t.n < n {
			first[t.client] = t.n
		}
	}
	return first
}

// completedBetween counts the transactions that completed, without failing, in
// [from, to).
func completedBetween(txs []pgbenchTx, from, to time.Time) int {
	n := 0
	for _, t := range txs {
		if !t.failed && !t.done.Before(from) && t.done.Before(to) {
			n++
		}
	}
	return n
}

// sleepCtx waits for d, or less if ctx ends first; it reports whether ctx is
// still going.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func regexpFind(s, prefix string) string {
	i := strings.Index(s, prefix)
	if i < 0 {
		return ""
	}
	return s[i+len(prefix):]
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// search finds the highest rate a runner sustains within the SLO (p99 ≤ slo, no
// errors): it doubles the rate from start until a step fails (or halves it until one
// passes), then bisects (geometrically) until the passing and failing rates are
// within 10%. It returns the passing step with the highest offered rate.
//
// A step that fails narrowly (no errors, p99 at most twice the SLO) runs once more,
// and the rate fails only if that fails too: its p99 is the third-slowest of a few
// hundred requests, so a single stall of this VM (the kernel reclaiming memory, a
// collection) decided a search (W3 once stopped at 92/s after a p99 of 50.6 ms at
// 100/s, the rate its fixed run had just sustained with a p99 of 14 ms). So does a
// step whose tail met a pause of the whole machine longer than the SLO (paused): no
// contender ran meanwhile, and the requests that fell due answered late by the pause.
func search(ctx context.Context, r runner, start float64, d, slo time.Duration, maxSteps int, logf func(string, ...any)) (best step, steps []step, err error) {
	lo, hi := 0.0, math.Inf(1)
	rate := start
	for range maxSteps {
		var s step
		var ok bool
		for try := range 2 {
			if s, err = r.run(ctx, rate, d); err != nil {
				return best, steps, err
			}
			steps = append(steps, s)
			ok = s.pass(slo)
			again := ""
			if try == 0 && !ok && (narrowMiss(s, slo) || paused(s, slo)) {
				again = ", once more"
			}
			logf("    rate %7.1f/s: %7.1f ok/s, p50 %6.2f ms, p99 %7.2f ms, %d errors, sent late p99 %.2f ms %s%s%s", rate, s.Throughput, s.P50, s.P99, s.Errors, s.LagP99, map[bool]string{true: "pass", false: "FAIL"}[ok], s.stalls(), again)
			if again == "" {
				break
			}
		}
		if ok {
			lo = rate
			// The best is the highest offered rate that passed: the rate the contender
			// sustained. The requests that completed a second are a count of random
			// arrivals (108/s at an offered 100), not a rate it sustained.
			if s.Rate > best.Rate {
				best = s
			}
		} else {
			hi = rate
			if s.FirstError != "" {
				logf("      first error: %.300s", s.FirstError)
			}
		}
		switch {
		case math.IsInf(hi, 1):
			rate *= 2
		case lo == 0:
			rate /= 2
			if rate < 0.5 {
				return best, steps, nil
			}
		case hi/lo <= 1.1:
			return best, steps, nil
		default:
			rate = math.Sqrt(lo * hi)
		}
	}
	return best, steps, nil
}

// poolRunner replays SQL over a pool of connections, open-model, as a server's pool
// runs it: each request takes the most recently used idle connection (database/sql
// hands them out so, as node-postgres does), so at a low rate one or two backends
// stay busy and hot. It is W6's floor. pgbench's clients take turns at the schedule:
// with the eight that the client rule gave W6 (at 20/s and 25-45 ms a transaction),
// each ran a transaction every 0.4 s on a backend gone cold, and spent 29-48 ms of
// PostgreSQL CPU a request where our server spent 20-33 on the same statements.
type poolRunner struct {
	db *sql.DB // at most the benchmark's pool size of connections, simple protocol
	mu sync.Mutex
	// next returns the statements of the next request, one transaction (begin to
	// commit), each sent as one query message.
	next func() []string
}

func (p *poolRunner) run(ctx context.Context, rate float64, d time.Duration) (step, error) {
	arrivals := poissonArrivals(rate, d) // as the other contenders' requests arrive
	n := len(arrivals)
	type outcome struct {
		lag, fromSend time.Duration
		err           error
	}
	outcomes := make(chan outcome, n)
	var wg sync.WaitGroup
	start := time.Now()
	for _, at := range arrivals {
		due := start.Add(at)
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(due)):
		}
		if ctx.Err() != nil {
			break
		}
		p.mu.Lock()
		statements := p.next()
		p.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sentAt := time.Now()
			err := replayOn(ctx, p.db, statements)
			outcomes <- outcome{sentAt.Sub(due), time.Since(sentAt), err}
		}()
	}
	wg.Wait()
	close(outcomes)
	s := step{Rate: rate}
	var ts timings
	for o := range outcomes {
		s.Requests++
		ts.add(o.lag, o.fromSend)
		if o.err != nil {
			s.failed(o.err.Error())
		}
	}
	s.fromTimings(ts, d, start)
	return s, ctx.Err()
}

// replay sends statements, one transaction, through exec (each as one query
// message), and rolls it back on the first error.
func replay(ctx context.Context, exec func(context.Context, string) error, statements []string) error {
	for _, s := range statements {
		if err := exec(ctx, s); err != nil {
			_ = exec(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("%s: %w", firstLineOf(s), err)
		}
	}
	return nil
}

// replayOn runs replay on one connection of db.
func replayOn(ctx context.Context, db *sql.DB, statements []string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return replay(ctx, func(ctx context.Context, s string) error {
		_, err := conn.ExecContext(ctx, s)
		return err
	}, statements)
}
