//go:build ignore

// rssdriver sends W1's request to a server open-model (Poisson arrivals, vegeta, the
// transport of segbench's httpRunner) at a rate for a duration, and reports the
// server's peak RSS (VmHWM, reset before the run as segbench does) with what the
// process held at its highest sampled RSS: goroutines, sockets, Go's memory stats.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

const body = `{"query":"query { segments(first: 50) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }","variables":null}`

func status(pid int) map[string]int64 {
	m := map[string]int64{}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) > 0 {
			m[k], _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	return m
}

func sockets(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

var pc = &http.Client{Timeout: 5 * time.Second}

func goroutines(pprof string) int {
	res, err := pc.Get("http://" + pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	l, _ := bufio.NewReader(res.Body).ReadString('\n')
	n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "goroutine profile: total")))
	return n
}

// memstats reads runtime.MemStats' fields from the heap profile's debug page.
func memstats(pprof string) map[string]int64 {
	m := map[string]int64{}
	res, err := pc.Get("http://" + pprof + "/debug/pprof/heap?debug=1")
	if err != nil {
		return m
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "# "), " = "); ok && strings.HasPrefix(l, "# ") {
			m[k], _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return m
}

func save(pprof, file string) {
	res, err := pc.Get("http://" + pprof + "/debug/pprof/" + file)
	if err != nil {
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	os.WriteFile(*out+"."+strings.SplitN(file, "?", 2)[0], b, 0o644)
}

var out = flag.String("out", "", "file prefix for the profiles taken at the highest RSS")

func poissonArrivals(rate float64, d time.Duration) []time.Duration {
	rng := rand.New(rand.NewPCG(math.Float64bits(rate), uint64(d)))
	var due []time.Duration
	for t := time.Duration(rng.ExpFloat64() / rate * float64(time.Second)); t < d; t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second)) {
		due = append(due, t)
	}
	return due
}

type arrivalPacer []time.Duration

func (due arrivalPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= uint64(len(due)) {
		return 0, true
	}
	return due[hits] - elapsed, false
}
func (due arrivalPacer) Rate(time.Duration) float64 {
	return float64(len(due)) / due[len(due)-1].Seconds()
}

type sample struct {
	t             time.Duration
	rss, hwm, thr int64
	socks, gor    int
	ms            map[string]int64
}

func main() {
	url := flag.String("url", "", "")
	key := flag.String("key", "", "")
	pid := flag.Int("pid", 0, "the server's process")
	pprof := flag.String("pprof", "", "the server's pprof address")
	rate := flag.Float64("rate", 100, "")
	dur := flag.Duration("d", 5*time.Second, "")
	label := flag.String("label", "", "")
	every := flag.Duration("every", 200*time.Millisecond, "sampling period")
	reset := flag.Bool("reset", true, "reset the server's VmHWM before the run (false: a run that goes on from the one before)")
	flag.Parse()

	before := status(*pid)
	if *reset {
		os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", *pid), []byte("5"), 0)
	}
	start := time.Now()
	var mu sync.Mutex
	var best sample
	stop := make(chan struct{})
	done := make(chan struct{})
	maxSocks, maxGor := 0, 0
	go func() {
		defer close(done)
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			st := status(*pid)
			s := sample{t: time.Since(start), rss: st["VmRSS"], hwm: st["VmHWM"], thr: st["Threads"], socks: sockets(*pid)}
			if *pprof != "" {
				s.gor = goroutines(*pprof)
				s.ms = memstats(*pprof)
			}
			mu.Lock()
			maxSocks, maxGor = max(maxSocks, s.socks), max(maxGor, s.gor)
			if s.rss > best.rss {
				best = s
				if *out != "" && *pprof != "" {
					save(*pprof, "heap")
				}
			}
			mu.Unlock()
		}
	}()

	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + *key}}
	tr := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body, t.Header = http.MethodPost, *url, []byte(body), h
		return nil
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 10000, DisableCompression: true}
	att := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: transport, Timeout: 15 * time.Second}), vegeta.MaxBody(-1))
	due := poissonArrivals(*rate, *dur)
	var n, ok, c503, other int
	firstOther := ""
	for res := range att.Attack(tr, arrivalPacer(due), *dur, "") {
		n++
		switch {
		case res.Error == "" && res.Code == 200 && !bytes.Contains(res.Body, []byte(`"errors"`)):
			ok++
		case res.Code == 503:
			c503++
		default:
			other++
			if firstOther == "" {
				firstOther = fmt.Sprintf("%d %s %.100s", res.Code, res.Error, res.Body)
			}
		}
	}
	el := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	transport.CloseIdleConnections()
	end := status(*pid)
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	fmt.Printf("%s rate=%.0f d=%s n=%d ok=%d e503=%d eother=%d rps_ok=%.0f | rss_before=%.0f peak(VmHWM)=%.0f rss_end=%.0f MiB | at highest sample t=%.1fs rss=%.0f threads=%d sockets=%d goroutines=%d heapalloc=%.0f heapinuse=%.0f stack=%.0f heapsys=%.0f sys=%.0f nextgc=%.0f numgc=%d | max sockets=%d goroutines=%d",
		*label, *rate, *dur, n, ok, c503, other, float64(ok)/el.Seconds(),
		mb(before["VmRSS"]), mb(end["VmHWM"]), mb(end["VmRSS"]), best.t.Seconds(), mb(best.rss), best.thr, best.socks, best.gor,
		float64(best.ms["HeapAlloc"])/(1<<20), float64(best.ms["HeapInuse"])/(1<<20), float64(best.ms["Stack"])/(1<<20), float64(best.ms["HeapSys"])/(1<<20), float64(best.ms["Sys"])/(1<<20), float64(best.ms["NextGC"])/(1<<20), best.ms["NumGC"],
		maxSocks, maxGor)
	if firstOther != "" {
		fmt.Printf(" | first other error: %q", firstOther)
	}
	fmt.Println()
}
