package telemetry

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
)

// ProfilingHandler serves Go's profiles under /debug/pprof/, as net/http/pprof does
// on the default mux (the index, every named profile, the command line, CPU profiles,
// execution traces and symbols), on a mux of its own: importing net/http/pprof
// registers them on http.DefaultServeMux, which nothing here serves.
//
// Profiles show the process's memory and code (the heap's call stacks, the command
// line with its flags): serve them only on a loopback listener (LoopbackAddr).
func ProfilingHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the index, and each profile by name
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// LoopbackAddr checks that addr (host:port) listens on a loopback interface only:
// 127.0.0.1 (or another 127/8 address), ::1 or localhost. An empty host listens on
// every interface.
func LoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return fmt.Errorf("%s is not a loopback address (%s): profiles show the process's memory, so they are served on 127.0.0.1, ::1 or localhost only", addr, host)
}
