package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

// TestRateLimitSettings proves the rate limit's settings: on by default with a
// bucket of 10,000 points refilled at 500 a second, a flag and an environment
// variable each (the flag winning), 0 turning it off, and settings that cannot work
// refused as usage errors before anything starts.
func TestRateLimitSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--rate-limit-restore-rate", "fast"}, nil},
		{nil, map[string]string{"SEGMENTS_RATE_LIMIT_CAPACITY": "lots"}},
		{nil, map[string]string{"SEGMENTS_RATE_LIMIT_CAPACITY": "-1"}},
		{nil, map[string]string{"SEGMENTS_RATE_LIMIT_RESTORE_RATE": "fast"}},
		{[]string{"--rate-limit-capacity", "-5"}, nil}, // refused as the variable is
	} {
		if _, _, err := parse("serve", tc.args, env(tc.env), io.Discard, true); !errors.Is(err, errUsage) {
			t.Errorf("%v %v: %v, want a usage error", tc.args, tc.env, err)
		}
	}
	for _, args := range [][]string{
		{"--max-cost", "-1"}, // no cost limit: a request could cost more than a bucket holds
		{"--max-cost", "-1", "--rate-limit-capacity", "1000000"},
		{"--rate-limit-restore-rate", "0"},
		{"--rate-limit-restore-rate", "-1"},
		{"--rate-limit-restore-rate", "+Inf"},
		{"--rate-limit-capacity", "999"},                    // below --max-cost's 1,000
		{"--rate-limit-capacity", "50", "--max-cost", "60"}, // below --max-cost
	} {
		cfg, _, err := parse("serve", args, env(nil), io.Discard, true)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if err := cfg.checkRateLimit(); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
		if th, err := cfg.throttle(nil); th != nil || !errors.Is(err, errUsage) {
			t.Errorf("%v: throttle %v, %v; want a usage error", args, th, err)
		}
	}

	cfg, _, err := parse("serve", nil, env(nil), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rateCapacity != 10_000 || cfg.rateRestore != 500 || cfg.checkRateLimit() != nil {
		t.Errorf("defaults: %d points, %g a second", cfg.rateCapacity, cfg.rateRestore)
	}
	cfg, _, err = parse("serve", []string{"--rate-limit-restore-rate", "2.5"},
		env(map[string]string{"SEGMENTS_RATE_LIMIT_CAPACITY": "1000", "SEGMENTS_RATE_LIMIT_RESTORE_RATE": "9"}), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rateCapacity != 1000 || cfg.rateRestore != 2.5 || cfg.checkRateLimit() != nil {
		t.Errorf("got %d points, %g a second", cfg.rateCapacity, cfg.rateRestore)
	}
	// Without a cost limit, only without rate limiting.
	cfg, _, err = parse("serve", []string{"--max-cost", "-1", "--rate-limit-capacity", "0"}, env(nil), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.checkRateLimit(); err != nil {
		t.Errorf("--max-cost -1 without rate limiting: %v", err)
	}
	// Off: no throttle at all (the server then reports a full bucket).
	cfg, _, err = parse("serve", []string{"--rate-limit-capacity", "0", "--rate-limit-restore-rate", "-1"}, env(nil), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if th, err := cfg.throttle(nil); th != nil || err != nil {
		t.Errorf("off: %v, %v", th, err)
	}
}

// TestServeRateLimited proves that serve rate-limits with the PostgreSQL buckets of
// its settings: the responses report the configured bucket, and a request over it
// gets 429 THROTTLED with a Retry-After.
func TestServeRateLimited(t *testing.T) {
	getenv := env(map[string]string{"DATABASE_URL": storetest.Database(t), "SEGMENTS_RATE_LIMIT_RESTORE_RATE": "0.5"})
	key := newWorkspace(t, getenv, "Throttled Retail")
	url := start(t, getenv, "--rate-limit-capacity", "1000")
	var q strings.Builder
	q.WriteString("{")
	for i := range 9 {
		fmt.Fprintf(&q, " s%d: segments(first: 100) { nodes { id } }", i) // 101 each
	}
	q.WriteString(" }")
	send := func() (int, string, map[string]any) {
		body, _ := json.Marshal(map[string]string{"query": q.String()})
		req, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out struct {
			Extensions struct {
				Cost struct {
					ThrottleStatus map[string]any
				}
			}
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Retry-After"), out.Extensions.Cost.ThrottleStatus
	}
	status, _, st := send()
	if status != http.StatusOK || st["maximumAvailable"] != 1000.0 || st["currentlyAvailable"] != 91.0 || st["restoreRate"] != 0.5 {
		t.Errorf("first: %d %v", status, st)
	}
	// (909 - 91) / 0.5 a second = 1,636 s.
	if status, retry, st := send(); status != http.StatusTooManyRequests || retry != "1636" || st["currentlyAvailable"] != 91.0 {
		t.Errorf("second: %d, Retry-After %q, %v", status, retry, st)
	}
}
