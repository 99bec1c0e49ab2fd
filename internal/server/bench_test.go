package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// The handler's hot paths, for regressions (go test -run '^$' -bench . ./internal/server/,
// or make bench-go): W1, W3, W4 and W6 of the benchmark suite (make bench), and a
// partner's sync of contacts (BenchmarkSyncContacts), on a modest dataset of 2,000
// contacts in 60 segments, through the real HTTP handler and a real PostgreSQL. Each
// reports allocations and the SQL statements per request, which must not grow with
// the page size.

const (
	benchContacts = 2000
	benchSegments = 60
)

// benchAPI returns a server with the benchmark workspace, filled once per process.
func benchAPI(b *testing.B) *api {
	b.Helper()
	// The production defaults of the settings that matter here (cmd/segments),
	// the garbage collector's target included.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(server.GCPercent)
	}
	a := newAPIWith(b, server.Config{BatchWait: time.Millisecond, KeyCacheTTL: 2 * time.Second})
	ctx := context.Background()
	var ids []int64
	for len(ids) < benchContacts {
		in := make([]crm.ContactInput, 0, crm.MaxBulkContacts)
		for i := len(ids); i < benchContacts && len(in) < cap(in); i++ {
			name := fmt.Sprintf("Contact %d", i)
			in = append(in, crm.ContactInput{Phone: fmt.Sprintf("+9198%08d", i), ContactDetails: crm.ContactDetails{
				Name: crm.Some(&name), Attributes: crm.Some(map[string]any{"city": "Pune", "n": i}),
			}})
		}
		res, err := a.store.UpsertContacts(ctx, a.ws.ID, in)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range res.Contacts {
			ids = append(ids, c.ID)
		}
	}
	for k := range benchSegments {
		desc := "segment for the benchmark"
		seg, err := a.store.CreateSegment(ctx, a.ws.ID, crm.NewSegment{Name: fmt.Sprintf("Segment %02d", k), Description: &desc})
		if err != nil {
			b.Fatal(err)
		}
		// Every contact is in about 5 segments.
		var members []int64
		for i, id := range ids {
			if (i*7+k*13)%benchSegments < 5 {
				members = append(members, id)
			}
		}
		for len(members) > 0 {
			n := min(len(members), crm.MaxBulkContacts)
			if _, err := a.store.AssignContactsToSegments(ctx, a.ws.ID, members[:n], []int64{seg.ID}, store.WithSegments); err != nil {
				b.Fatal(err)
			}
			members = members[n:]
		}
	}
	return a
}

// benchPost sends bodies in turn, first to warm up and then b.N times, checks the
// answers, and returns how many requests it sent.
func benchPost(b *testing.B, a *api, bodies [][]byte) int {
	b.Helper()
	return benchSend(b, a, func(n int) []byte { return bodies[n%len(bodies)] }, nil)
}

// benchSend is benchPost for requests that differ each time: body(n) is the n-th
// request's (from 0, the warm-up's), and check, when not nil, is asked about each
// answer besides its status and errors.
func benchSend(b *testing.B, a *api, body func(n int) []byte, check func(answer []byte) error) int {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func(body []byte) {
		req, _ := http.NewRequest(http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+string(a.key))
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || bytes.Contains(out, []byte(`"errors"`)) {
			b.Fatalf("status %d: %s", res.StatusCode, out)
		}
		if check != nil {
			if err := check(out); err != nil {
				b.Fatalf("%v: %.500s", err, out)
			}
		}
	}
	send(body(0)) // warm: query cache, connections
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	n := 0
	for b.Loop() {
		n++
		send(body(n))
	}
	cpu = processCPU() - cpu
	b.StopTimer()
	b.ReportMetric(float64(a.statements()), "stmts/op")
	// The CPU this process (server and client, not PostgreSQL) spent per request:
	// steadier than ns/op on a shared machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(n, 1)), "cpu-ns/op")
	return n + 1
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func gqlBody(query string, vars map[string]any) []byte {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return body
}

// BenchmarkW1SegmentPage is the dashboard's segment list: 50 segments, newest first,
// with their counts.
func BenchmarkW1SegmentPage(b *testing.B) {
	a := benchAPI(b)
	benchPost(b, a, [][]byte{gqlBody(`{ segments(first: 50) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`, nil)})
}

// BenchmarkW3ContactsPage is the contacts table: 50 contacts after a cursor, each
// with its segments. The cursors are those of real pages, taken once.
func BenchmarkW3ContactsPage(b *testing.B) {
	a := benchAPI(b)
	const q = `query($after: String) { contacts(first: 50, after: $after) { edges { cursor node { id name phone email attributes segments { id name } } } pageInfo { hasNextPage endCursor } } }`
	var bodies [][]byte
	var after any
	for range benchContacts / 50 / 2 {
		var out struct {
			Contacts struct {
				PageInfo struct{ EndCursor string } `json:"pageInfo"`
			} `json:"contacts"`
		}
		bodies = append(bodies, gqlBody(q, map[string]any{"after": after}))
		a.do(q, map[string]any{"after": after}, &out)
		after = out.Contacts.PageInfo.EndCursor
	}
	benchPost(b, a, bodies)
}

// BenchmarkDashboardRoots is a dashboard's first page in one request of three root
// fields: the workspace (from the request's authentication, no statement), a page of
// segments and a page of contacts with their segments with both totals. Its latency
// is what a bound on the statements run at once (graph.StatementsAtOnce) trades.
func BenchmarkDashboardRoots(b *testing.B) {
	a := benchAPI(b)
	benchPost(b, a, [][]byte{gqlBody(`{
		workspace { id name }
		segments(first: 20) { totalCount nodes { id name contactCount } }
		contacts(first: 20) { totalCount nodes { id name phone segments { id name } } }
	}`, nil)})
}

// BenchmarkW4RareSearch is a contact search for a term no contact has: next to no
// rows, so it measures what every request costs (HTTP, parsing, validation, the
// middleware, one statement) rather than the page.
func BenchmarkW4RareSearch(b *testing.B) {
	a := benchAPI(b)
	benchPost(b, a, [][]byte{gqlBody(`query($t: String!) { contacts(first: 50, search: $t) { nodes { id name phone email } pageInfo { hasNextPage endCursor } } }`, map[string]any{"t": "qzxv"})})
}

// BenchmarkW6Assign is a bulk assignment of 100 contacts to 10 segments, every
// request new memberships (2,000 requests make them, the warm-up's included: run it
// with -benchtime 1999x or less), as a partner's sync sends them.
func BenchmarkW6Assign(b *testing.B) {
	a := benchAPI(b)
	ctx := context.Background()
	ids := func(kind globalid.Kind, query string, args ...any) []string {
		var out []string
		for _, id := range storetest.Column[int64](b, a.store.DB(), query, args...) {
			out = append(out, globalid.Encode(kind, id))
		}
		return out
	}
	contacts := ids(globalid.Contact, `SELECT id FROM contacts WHERE workspace_id = $1 ORDER BY id`, a.ws.ID)
	segments := ids(globalid.Segment, `INSERT INTO segments (workspace_id, name)
		SELECT $1, 'W6 scratch ' || g FROM generate_series(1, 1000) AS g RETURNING id`, a.ws.ID)
	const q = `mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount userErrors { field message code } } }`
	var bodies [][]byte
	for s := 0; s+10 <= len(segments); s += 10 {
		for c := 0; c+100 <= len(contacts); c += 100 {
			bodies = append(bodies, gqlBody(q, map[string]any{"in": map[string]any{
				"contactIds": contacts[c : c+100], "segmentIds": segments[s : s+10]}}))
		}
	}
	sent := benchPost(b, a, bodies)
	if sent > len(bodies) {
		b.Fatalf("%d requests, but only %d make new memberships: use -benchtime %dx or less", sent, len(bodies), len(bodies)-1)
	}
	// Every request made its 1,000 memberships.
	var made int
	if err := a.store.DB().QueryRowContext(ctx, `SELECT count(*) FROM memberships m JOIN segments s
		ON s.workspace_id = m.workspace_id AND s.id = m.segment_id
		WHERE m.workspace_id = $1 AND s.name LIKE 'W6 scratch %'`, a.ws.ID).Scan(&made); err != nil {
		b.Fatal(err)
	}
	if made != sent*1000 {
		b.Fatalf("%d memberships made by %d requests, want %d", made, sent, sent*1000)
	}
}

// BenchmarkSyncContacts is a partner's contact sync: upsertContacts of 1,000
// contacts a request, 500 new and 500 existing ones whose attributes change, each
// request checked to have created and updated that many. Besides the time per
// request it reports the time per contact. Building each request's JSON is part
// of the loop (about 1% of its time).
func BenchmarkSyncContacts(b *testing.B) {
	a := benchAPI(b)
	const q = `mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { createdCount updatedCount userErrors { field message code } } }`
	const half = crm.MaxBulkContacts / 2
	body := func(n int) []byte {
		var in bytes.Buffer
		for i := range half {
			fmt.Fprintf(&in, `{"phone":"+9197%08d","name":"Synced %d","attributes":{"city":"Pune","source":"sync"}},`, n*half+i, n*half+i)
		}
		// benchAPI's contacts, each given a value it has not had.
		for i := range half {
			fmt.Fprintf(&in, `{"phone":"+9198%08d","attributes":{"synced":%d}},`, (n*half+i)%benchContacts, n)
		}
		return []byte(`{"query":` + strconv.Quote(q) + `,"variables":{"in":{"contacts":[` + strings.TrimSuffix(in.String(), ",") + `]}}}`)
	}
	check := func(answer []byte) error {
		var out struct {
			Data struct {
				UpsertContacts struct{ CreatedCount, UpdatedCount int }
			}
		}
		if err := json.Unmarshal(answer, &out); err != nil {
			return err
		}
		if got := out.Data.UpsertContacts; got.CreatedCount != half || got.UpdatedCount != half {
			return fmt.Errorf("created %d and updated %d contacts, want %d and %d", got.CreatedCount, got.UpdatedCount, half, half)
		}
		return nil
	}
	benchSend(b, a, body, check)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*crm.MaxBulkContacts), "ns/contact")
}
