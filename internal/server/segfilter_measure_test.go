package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestMeasureSegmentContactsFilter measures Segment.contacts(filter:) through the
// API at 200,000 contacts of `segments bench-data --contacts 200000 --big-size
// 100000 --memberships 1500000` (ten segments of 100,000 members; the 990 others share 500,000 memberships), on a database of its
// own, as the server's role: a first page of 50 and totalCount alone, of a segment
// of 100,000 and of a small one, and of each of the 50 largest segments read in a
// list (a page of 10), for a few filters and none. It logs the medians of 7 (after
// 2 warm-ups) with their ranges, and the statements of each request
// (docs/performance.md, "Contact filters"). It runs only with
// SEGMENTS_MEASURE_SEGFILTER=1: the load takes a minute or more on 2 cores.
func TestMeasureSegmentContactsFilter(t *testing.T) {
	if os.Getenv("SEGMENTS_MEASURE_SEGFILTER") == "" {
		t.Skip("a measurement: set SEGMENTS_MEASURE_SEGFILTER=1 to run it")
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := storetest.Database(t)
	owner := storetest.MigratedStore(t, url, store.Options{})
	res, err := benchdata.Load(ctx, owner, benchdata.Options{Workspace: "segfilter", Contacts: 200_000, Memberships: 1_500_000, BigSize: 100_000, Seed: 1}, log)
	if err != nil {
		t.Fatal(err)
	}
	// The server's store opens after the load, so that it learns the workspace's
	// statistics as a server started on the data does.
	appURL, err := store.AppURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// As the server opens it (cmd/segments/appstore.go).
	app, err := store.Open(ctx, appURL, store.Options{ClientCheckInterval: store.ClientCheckInterval, SerialPlans: true, NoJIT: true, Tenant: storetest.AuthTenant})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	h := server.Handler(app, log, server.Config{Limits: limits.Limits{MaxCost: 1_000_000, MaxAliases: 1_000, MaxRootFields: 1_000}})
	var counter *store.StatementCounter
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		counter = &store.StatementCounter{}
		h.ServeHTTP(w, r.WithContext(store.WithStatementCounter(r.Context(), counter)))
	}))
	defer srv.Close()
	send := func(query string, vars map[string]any) time.Duration {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+string(res.Key))
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		var decoded struct {
			Errors []any `json:"errors"`
		}
		if err := json.Unmarshal(out, &decoded); err != nil || len(decoded.Errors) > 0 || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", query, resp.StatusCode, out)
		}
		return took
	}

	var small int64
	var smallCount, bigCount int
	db := owner.DB()
	big := res.SegmentIDs[0]
	if err := db.QueryRowContext(ctx, `SELECT contact_count FROM segments WHERE workspace_id = $1 AND id = $2`, res.Workspace.ID, big).Scan(&bigCount); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT id, contact_count FROM segments WHERE workspace_id = $1 AND contact_count BETWEEN 500 AND 3000
		ORDER BY contact_count DESC LIMIT 1`, res.Workspace.ID).Scan(&small, &smallCount); err != nil {
		t.Fatal(err)
	}
	var recent time.Time
	if err := db.QueryRowContext(ctx, `SELECT created_at FROM contacts WHERE workspace_id = $1 ORDER BY created_at DESC OFFSET 10000 LIMIT 1`, res.Workspace.ID).Scan(&recent); err != nil {
		t.Fatal(err)
	}
	other := globalid.Encode(globalid.Segment, res.SegmentIDs[1])
	filters := []struct {
		name   string
		filter map[string]any
	}{
		{"none", nil},
		{"city = Pune", map[string]any{"attributes": []any{map[string]any{"key": "city", "equals": "Pune"}}}},
		{"hasEmail: false", map[string]any{"hasEmail": false}},
		{"orders at least 39", map[string]any{"attributes": []any{map[string]any{"key": "orders", "atLeast": 39}}}},
		{"the newest 10,000 (createdAt)", map[string]any{"createdAt": map[string]any{"from": recent.Format(time.RFC3339Nano)}}},
		{"not in another segment of 100,000", map[string]any{"segments": map[string]any{"none": []string{other}}}},
	}
	shapes := []struct {
		name  string
		query string
		seg   int64
	}{
		{fmt.Sprintf("segment of %d, first 50", bigCount), `query($id: ID!, $f: ContactFilter) { segment(id: $id) { contacts(first: 50, filter: $f) { nodes { id name phone } } } }`, big},
		{fmt.Sprintf("segment of %d, totalCount", bigCount), `query($id: ID!, $f: ContactFilter) { segment(id: $id) { contacts(filter: $f) { totalCount } } }`, big},
		{fmt.Sprintf("segment of %d, first 50", smallCount), `query($id: ID!, $f: ContactFilter) { segment(id: $id) { contacts(first: 50, filter: $f) { nodes { id name phone } } } }`, small},
		{fmt.Sprintf("segment of %d, totalCount", smallCount), `query($id: ID!, $f: ContactFilter) { segment(id: $id) { contacts(filter: $f) { totalCount } } }`, small},
		{"50 largest, first 10 each", `query($f: ContactFilter) { segments(first: 50, orderBy: {field: CONTACT_COUNT, direction: DESC}) { nodes { id contacts(first: 10, filter: $f) { nodes { id name phone } } } } }`, 0},
		{"50 largest, totalCount each", `query($f: ContactFilter) { segments(first: 50, orderBy: {field: CONTACT_COUNT, direction: DESC}) { nodes { id contacts(filter: $f) { totalCount } } } }`, 0},
		{"50 smallest, first 10 each", `query($f: ContactFilter) { segments(first: 50, orderBy: {field: CONTACT_COUNT, direction: ASC}) { nodes { id contacts(first: 10, filter: $f) { nodes { id name phone } } } } }`, 0},
		{"50 smallest, totalCount each", `query($f: ContactFilter) { segments(first: 50, orderBy: {field: CONTACT_COUNT, direction: ASC}) { nodes { id contacts(filter: $f) { totalCount } } } }`, 0},
	}
	t.Logf("200,000 contacts; segments of %d and %d; medians of 7 in ms (min-max), statements", bigCount, smallCount)
	for _, shape := range shapes {
		for _, f := range filters {
			vars := map[string]any{"f": f.filter}
			if shape.seg != 0 {
				vars["id"] = globalid.Encode(globalid.Segment, shape.seg)
			}
			var times []time.Duration
			for rep := range 9 {
				took := send(shape.query, vars)
				if rep >= 2 {
					times = append(times, took)
				}
			}
			slices.Sort(times)
			ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
			t.Logf("| %s | %s | %s (%s-%s) | %d |", shape.name, f.name, ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]), counter.N())
		}
	}
}
