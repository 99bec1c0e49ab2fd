package connlimit

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkKeepAliveRequests measures what the cap's bookkeeping (two ConnState
// calls per request, each a lock and a list operation) costs a request over a
// keep-alive connection, against a handler that does nothing, the worst case:
// plain is the server without the Listener, capped with it. cpu-ns/op is the
// process's CPU (client and server) per request, steadier than ns/op on a shared
// machine. Compare with benchstat over alternating runs.
func BenchmarkKeepAliveRequests(b *testing.B) {
	for _, capped := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "capped"}[capped]
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: ok, IdleTimeout: time.Minute}
			var serveOn net.Listener = ln
			if capped {
				l := New(ln, Options{Max: 1000})
				srv.ConnState, srv.ConnContext, srv.Handler, serveOn = l.ConnState, l.ConnContext, l.Handler(ok), l
			}
			go srv.Serve(serveOn)
			defer srv.Close()
			url := "http://" + ln.Addr().String() + "/"
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			defer client.CloseIdleConnections()
			get := func() {
				res, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			get()
			b.ReportAllocs()
			b.SetParallelism(2)
			cpu := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConnState is the bookkeeping of one request alone: the two ConnState
// calls (active, then idle again) of a keep-alive connection among 1,000 idle ones,
// and Handler's check, from parallel connections.
func BenchmarkConnState(b *testing.B) {
	l := New(nil, Options{Max: 10_000})
	for range 1000 {
		c := &conn{l: l}
		l.open++
		l.ConnState(c, http.StateNew)
		l.ConnState(c, http.StateIdle)
	}
	h := l.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := &conn{l: l}
		l.ConnState(c, http.StateNew)
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(l.ConnContext(r.Context(), c))
		for pb.Next() {
			l.ConnState(c, http.StateActive)
			h.ServeHTTP(nil, r)
			l.ConnState(c, http.StateIdle)
		}
	})
}
