//go:build ignore

// w1driver sends W1's request to a server at a fixed rate (open model) or closed-loop at
// full speed, and reports the server's and PostgreSQL's CPU per request and latencies.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const body = `{"query":"query { segments(first: 50) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }"}`

func procCPU(pid int) time.Duration {
	var ts syscall.Timespec
	clk := (^int32(pid))<<3 | 2
	_, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, uintptr(clk), uintptr(unsafe.Pointer(&ts)), 0)
	if e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

func fields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

func sched(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	return time.Duration(n)
}

func reaped(pid int) time.Duration {
	f := fields(pid)
	if f == nil {
		return 0
	}
	a, _ := strconv.ParseInt(f[13], 10, 64)
	b, _ := strconv.ParseInt(f[14], 10, 64)
	return time.Duration(a+b) * 10 * time.Millisecond
}

// pgSnap: CPU of the postmaster's children by pid, plus postmaster (own + reaped).
func pgSnap(pm int) map[int]time.Duration {
	m := map[int]time.Duration{}
	m[-1] = sched(pm) + reaped(pm)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := fields(pid)
		if f == nil {
			continue
		}
		if pp, _ := strconv.Atoi(f[1]); pp == pm {
			m[pid] = sched(pid)
		}
	}
	return m
}

// ctxsw sums the context switches of a process's threads.
func ctxsw(pid int) int64 {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var n int64
	for _, e := range ents {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				v, _ := strconv.ParseInt(strings.TrimSpace(l[strings.IndexByte(l, ':')+1:]), 10, 64)
				n += v
			}
		}
	}
	return n
}

// pgSlices sums the timeslices (schedstat's third field) of the postmaster's children.
func pgSlices(pm int) map[int]int64 {
	m := map[int]int64{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := fields(pid)
		if f == nil {
			continue
		}
		if pp, _ := strconv.Atoi(f[1]); pp == pm {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
			if x := strings.Fields(string(b)); len(x) == 3 {
				m[pid], _ = strconv.ParseInt(x[2], 10, 64)
			}
		}
	}
	return m
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func main() {
	url := flag.String("url", "http://127.0.0.1:18080/graphql", "")
	key := flag.String("key", "", "")
	rate := flag.Float64("rate", 100, "requests/s; 0: closed loop")
	conc := flag.Int("c", 4, "closed-loop workers")
	dur := flag.Duration("d", 15*time.Second, "")
	spid := flag.Int("server", 0, "")
	pm := flag.Int("pm", 0, "")
	label := flag.String("label", "", "")
	perpid := flag.String("perpid", "", "file for per-backend CPU")
	flag.Parse()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	do := func() (time.Duration, bool) {
		req, _ := http.NewRequest("POST", *url, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+*key)
		t := time.Now()
		resp, err := cl.Do(req)
		if err != nil {
			return 0, false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ok := resp.StatusCode == 200 && !bytes.Contains(b, []byte(`"errors"`))
		return time.Since(t), ok
	}
	// warm-up
	for i := 0; i < 200; i++ {
		do()
	}
	var mu sync.Mutex
	var lats []time.Duration
	fails := 0
	rec := func(d time.Duration, ok bool) {
		mu.Lock()
		if ok {
			lats = append(lats, d)
		} else {
			fails++
		}
		mu.Unlock()
	}
	c0 := ctxsw(*spid)
	q0 := pgSlices(*pm)
	s0 := procCPU(*spid)
	p0 := pgSnap(*pm)
	t0 := time.Now()
	var wg sync.WaitGroup
	if *rate > 0 {
		iv := time.Duration(float64(time.Second) / *rate)
		n := int(dur.Seconds() * *rate)
		for i := 0; i < n; i++ {
			time.Sleep(time.Until(t0.Add(time.Duration(i) * iv)))
			wg.Add(1)
			go func() { defer wg.Done(); rec(do()) }()
		}
	} else {
		end := t0.Add(*dur)
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					rec(do())
				}
			}()
		}
	}
	wg.Wait()
	el := time.Since(t0)
	s1 := procCPU(*spid)
	p1 := pgSnap(*pm)
	c1 := ctxsw(*spid)
	q1 := pgSlices(*pm)
	var sl int64
	for pid, v := range q1 {
		sl += v - q0[pid]
	}
	var pgTot time.Duration
	type pp struct {
		pid int
		d   time.Duration
	}
	var per []pp
	for pid, v := range p1 {
		d := v - p0[pid]
		pgTot += d
		per = append(per, pp{pid, d})
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	n := len(lats)
	q := func(f float64) float64 {
		if n == 0 {
			return 0
		}
		return float64(lats[int(f*float64(n-1))].Microseconds()) / 1000
	}
	fmt.Printf("%s n=%d fail=%d rps=%.0f srv_ms/req=%.3f pg_ms/req=%.3f p50=%.2f p90=%.2f p99=%.2f srv_csw/req=%.2f pg_slices/req=%.2f\n",
		*label, n, fails, float64(n)/el.Seconds(),
		float64((s1-s0).Microseconds())/1000/float64(n), float64(pgTot.Microseconds())/1000/float64(n), q(.5), q(.9), q(.99), float64(c1-c0)/float64(n), float64(sl)/float64(n))
	if *perpid != "" {
		f, _ := os.Create(*perpid)
		for _, p := range per {
			fmt.Fprintf(f, "%d\t%.3f\t%s\n", p.pid, float64(p.d.Microseconds())/1000/float64(n), cmdline(p.pid))
		}
		f.Close()
	}
}
