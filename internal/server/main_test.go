package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// api is a client of a real server (the HTTP handler on a real PostgreSQL) acting for
// one fresh workspace.
type api struct {
	t     testing.TB
	url   string
	key   auth.Key
	ws    crm.Workspace
	store *store.Store // the database as its owner sees it, to set up and inspect
	// app is the store the server runs on: as the application's role, which
	// row-level security holds to each request's workspace.
	app *store.Store
	// last counts the SQL statements of the last request (see statements).
	last *atomic.Pointer[store.StatementCounter]
	// spawned counts the goroutines the process started while the server handled the
	// last request (see goroutines).
	spawned *atomic.Uint64
	// header holds headers send adds to every request (a browser's Origin).
	header map[string]string
}

// statements returns the number of SQL statements the last request sent.
func (a *api) statements() int64 { return a.last.Load().N() }

// goroutines returns the number of goroutines the process started while the server
// handled the last request: the server's own, and any that another test running at
// the same time started.
func (a *api) goroutines() uint64 { return a.spawned.Load() }

// goroutinesCreated reads the number of goroutines the process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// newAPI starts a server and creates a workspace to act for.
func newAPI(t testing.TB) *api {
	t.Helper()
	return newAPIWith(t, server.Config{})
}

// newAPIWith is newAPI with a server configured by cfg.
func newAPIWith(t testing.TB, cfg server.Config) *api {
	t.Helper()
	s := storetest.Store(t)
	ws, key := storetest.Workspace(t, s)
	a := &api{t: t, key: key, ws: ws, store: s, app: storetest.AppStore(t), last: &atomic.Pointer[store.StatementCounter]{}, spawned: &atomic.Uint64{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A long batch wait keeps batching deterministic under the race detector; the
	// prefetched paths do not wait at all.
	if cfg.BatchWait == 0 {
		cfg.BatchWait = 50 * time.Millisecond
	}
	// The functional suites read whole workspaces in one request (100 segments of 100
	// contacts) and batch dozens of aliased lists in one operation: past the production
	// caps on cost, aliases and root fields, which limits_test.go tests with
	// limits.Defaults.
	if cfg.Limits == (limits.Limits{}) {
		cfg.Limits = limits.Limits{MaxCost: 100_000, MaxAliases: 1_000, MaxRootFields: 1_000}
	}
	h := server.Handler(a.app, log, cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &store.StatementCounter{}
		a.last.Store(c)
		before := goroutinesCreated()
		h.ServeHTTP(w, r.WithContext(store.WithStatementCounter(r.Context(), c)))
		a.spawned.Store(goroutinesCreated() - before)
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// as returns a client of the same server acting for another new workspace.
func (a *api) as(t testing.TB) *api {
	t.Helper()
	ws, key := storetest.Workspace(t, a.store)
	b := *a
	b.t, b.ws, b.key = t, ws, key
	return &b
}

// response is a GraphQL response.
type response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	Extensions map[string]any `json:"extensions"`
}

// post sends a GraphQL request and returns the raw response.
func (a *api) post(query string, vars map[string]any) response {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+string(a.key))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	var out response
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		a.t.Fatalf("decode response (status %d): %v", res.StatusCode, err)
	}
	out.Status = res.StatusCode
	return out
}

// do sends a GraphQL request that must succeed, and decodes its data into dst.
func (a *api) do(query string, vars map[string]any, dst any) {
	a.t.Helper()
	res := a.post(query, vars)
	if len(res.Errors) > 0 || res.Status != http.StatusOK {
		a.t.Fatalf("status %d, errors: %+v", res.Status, res.Errors)
	}
	if dst != nil {
		if err := json.Unmarshal(res.Data, dst); err != nil {
			a.t.Fatalf("decode data %s: %v", res.Data, err)
		}
	}
}

// fails sends a GraphQL request that must fail with a top-level error of code, and
// returns the error's message.
func (a *api) fails(code, query string, vars map[string]any) string {
	a.t.Helper()
	res := a.post(query, vars)
	if len(res.Errors) == 0 {
		a.t.Fatalf("no error, want %s; data: %s", code, res.Data)
	}
	if got := res.Errors[0].Extensions["code"]; got != code {
		a.t.Fatalf("error code %v, want %s: %+v", got, code, res.Errors)
	}
	return res.Errors[0].Message
}

// userError is an element of a mutation payload's userErrors.
type userError struct {
	Field   []string `json:"field"`
	Message string   `json:"message"`
	Code    string   `json:"code"`
}

func (u userError) String() string {
	return u.Code + " at " + strings.Join(u.Field, ".") + ": " + u.Message
}

// contact is a contact as the tests read it.
type contact struct {
	ID         string         `json:"id"`
	Phone      string         `json:"phone"`
	Name       *string        `json:"name"`
	Email      *string        `json:"email"`
	Attributes map[string]any `json:"attributes"`
	Segments   []segment      `json:"segments"`
	CreatedAt  string         `json:"createdAt"`
	UpdatedAt  string         `json:"updatedAt"`
}

// segment is a segment as the tests read it.
type segment struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Description  *string `json:"description"`
	ContactCount int     `json:"contactCount"`
	CreatedAt    string  `json:"createdAt"`
	UpdatedAt    string  `json:"updatedAt"`
}

const contactFields = `id phone name email attributes createdAt updatedAt`
const segmentFields = `id name description contactCount createdAt updatedAt`

// addContacts upserts contacts with the given phones and returns their IDs.
func (a *api) addContacts(phones ...string) []string {
	a.t.Helper()
	in := make([]map[string]any, len(phones))
	for i, p := range phones {
		in[i] = map[string]any{"phone": p}
	}
	var out struct {
		UpsertContacts struct {
			Contacts   []contact   `json:"contacts"`
			UserErrors []userError `json:"userErrors"`
		} `json:"upsertContacts"`
	}
	a.do(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } userErrors { field message code } } }`,
		map[string]any{"in": map[string]any{"contacts": in}}, &out)
	if len(out.UpsertContacts.UserErrors) > 0 {
		a.t.Fatalf("upsert: %v", out.UpsertContacts.UserErrors)
	}
	ids := make([]string, len(phones))
	for i, c := range out.UpsertContacts.Contacts {
		ids[i] = c.ID
	}
	return ids
}

// addSegment creates a segment holding the given contacts and returns its ID.
func (a *api) addSegment(name string, contactIDs ...string) string {
	a.t.Helper()
	var out struct {
		CreateSegment struct {
			Segment    *segment    `json:"segment"`
			UserErrors []userError `json:"userErrors"`
		} `json:"createSegment"`
	}
	if contactIDs == nil {
		contactIDs = []string{}
	}
	a.do(`mutation($in: CreateSegmentInput!) { createSegment(input: $in) { segment { id } userErrors { field message code } } }`,
		map[string]any{"in": map[string]any{"name": name, "contactIds": contactIDs}}, &out)
	if len(out.CreateSegment.UserErrors) > 0 {
		a.t.Fatalf("create segment: %v", out.CreateSegment.UserErrors)
	}
	return out.CreateSegment.Segment.ID
}

// phones returns n distinct valid Indian mobile numbers starting at base.
func phones(base, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "+9198" + pad8(base+i)
	}
	return out
}

func pad8(n int) string {
	s := "00000000" + itoa(n)
	return s[len(s)-8:]
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// segmentNamed is the number of segments of a's workspace named name, read by the
// store's owner (no lock of the test's blocks it).
func (a *api) segmentNamed(name string) int {
	a.t.Helper()
	var n int
	if err := a.store.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM segments WHERE workspace_id = $1 AND name = $2", a.ws.ID, name).Scan(&n); err != nil {
		a.t.Fatal(err)
	}
	return n
}

// realCount counts a segment's memberships in the database, bypassing the counter.
func (a *api) realCount(segmentID int64) int {
	a.t.Helper()
	var n int
	err := a.store.DB().QueryRowContext(context.Background(),
		"SELECT count(*) FROM memberships WHERE workspace_id = $1 AND segment_id = $2", a.ws.ID, segmentID).Scan(&n)
	if err != nil {
		a.t.Fatal(err)
	}
	return n
}
