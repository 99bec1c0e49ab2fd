package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestAbandoningWorkspaceStarvesNoOther, after the black-box prober that found it:
// the clients of one workspace abandon about 90 contact searches a second (their
// timeouts of 3-40 ms end each request mid-way, and the server cancels its
// statement), while the postmaster, which forks a process for every cancel request
// and every new connection, is slowed down in pulses (a loaded machine). Another
// workspace's ordinary requests must still be answered, and soon: the abandoning
// workspace may cost the others no more than its own places.
func TestAbandoningWorkspaceStarvesNoOther(t *testing.T) {
	url, postmaster := storetest.PausableServer(t)
	ctx := context.Background()
	owner := storetest.MigratedStore(t, url, store.Options{MaxConns: 4})
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// The server's store, as serve opens it.
	app, err := store.Open(ctx, appURL, store.Options{AppName: "storm", Tenant: storetest.AuthTenant,
		ClientCheckInterval: store.ClientCheckInterval, SerialPlans: true, NoJIT: true, StatementTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	const deadline = 5 * time.Second
	h := server.Handler(app, slog.New(slog.NewTextHandler(io.Discard, nil)), server.Config{
		RequestTimeout: deadline, KeyCacheTTL: 2 * time.Second, NoPlayground: true,
		Limits: limits.Limits{MaxCost: 100_000, MaxAliases: 1_000, MaxRootFields: 1_000},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	_, stormKey := storetest.Workspace(t, owner)
	_, victimKey := storetest.Workspace(t, owner)
	storm := &api{t: t, url: srv.URL, key: stormKey}
	victim := &api{t: t, url: srv.URL, key: victimKey}
	for i := range 4 {
		storm.addContacts(phones(i*1000, 1000)...)
	}
	victim.addContacts(phones(0, 50)...)

	send := func(ctx context.Context, key auth.Key, query string) (int, string, error) {
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+string(key))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		var out response
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			return res.StatusCode, "", err
		}
		if len(out.Errors) > 0 {
			code, _ := out.Errors[0].Extensions["code"].(string)
			return res.StatusCode, code + ": " + out.Errors[0].Message, nil
		}
		return res.StatusCode, "", nil
	}

	// StopPostmaster skips the test where the postmaster cannot be stopped, which
	// only the test's goroutine may do: tried here first, and its resumption (also
	// when the test ends) registered here.
	storetest.StopPostmaster(t, postmaster)()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the slow postmaster: stopped 700 ms of every second
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if err := syscall.Kill(postmaster, syscall.SIGSTOP); err != nil {
				t.Errorf("stop the postmaster: %v", err)
				return
			}
			time.Sleep(700 * time.Millisecond)
			_ = syscall.Kill(postmaster, syscall.SIGCONT)
		}
	})
	var abandoned int
	var mu sync.Mutex
	for c := range 4 { // the storm: each client abandons a search every 45 ms or so
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				timeout := time.Duration(3+(c*13+i*7)%38) * time.Millisecond
				reqCtx, cancel := context.WithTimeout(ctx, timeout)
				start := time.Now()
				_, _, _ = send(reqCtx, stormKey, `{ contacts(first: 20, search: "98000`+itoa(c)+`") { totalCount nodes { id phone } } }`)
				cancel()
				mu.Lock()
				abandoned++
				mu.Unlock()
				time.Sleep(max(0, 45*time.Millisecond-time.Since(start)))
			}
		})
	}
	type answer struct {
		took time.Duration
		err  string
	}
	var answers []answer
	var amu sync.Mutex
	for range 3 { // the victims: another workspace's ordinary pages, each client one at a time
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				start := time.Now()
				status, msg, err := send(ctx, victimKey, `{ contacts(first: 10) { nodes { id phone } } }`)
				a := answer{took: time.Since(start), err: msg}
				if err != nil {
					a.err = err.Error()
				} else if status != http.StatusOK && msg == "" {
					a.err = http.StatusText(status)
				}
				amu.Lock()
				answers = append(answers, a)
				amu.Unlock()
			}
		})
	}
	var open []int
	wg.Go(func() { // the pool, sampled
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			open = append(open, app.DB().Stats().OpenConnections)
		}
	})
	time.Sleep(6 * time.Second)
	close(stop)
	wg.Wait()

	var took []time.Duration
	var failed []string
	for _, a := range answers {
		took = append(took, a.took)
		if a.err != "" {
			failed = append(failed, a.err)
		}
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration { return took[int(p*float64(len(took)-1))].Round(time.Millisecond) }
	t.Logf("%d requests abandoned; another workspace's %d requests: p50 %v, p99 %v, max %v, %d failed; %+v; the pool's connections open, sampled: %d-%d",
		abandoned, len(took), pct(0.5), pct(0.99), pct(1), len(failed), app.CancelCounts(), slices.Min(open), slices.Max(open))
	if len(failed) > 0 {
		t.Errorf("%d of %d requests of another workspace failed, the first: %s", len(failed), len(took), failed[0])
	}
	if p99 := pct(0.99); p99 > deadline/2 {
		t.Errorf("another workspace's requests took %v at the 99th percentile, want at most %v", p99, deadline/2)
	}
}
