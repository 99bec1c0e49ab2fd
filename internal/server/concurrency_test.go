package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store/storetest"
)

// The load of TestCountsStayExactUnderConcurrentRequests.
const (
	concWorkers  = 8
	concOps      = 1000 // in total, over all workers
	concSegments = 8    // segments in the shared pool
	concContacts = 60   // contacts in the shared pool
	concVictims  = 25   // private contacts per worker, one deleted with each deleteContacts
)

// TestCountsStayExactUnderConcurrentRequests sends 1,000 random mutations from 8
// concurrent clients through the HTTP handler, on a small pool of segments and
// contacts that they all assign, remove and delete at once, replenished by
// createSegment and upsertContacts. It checks that:
//
//   - no request fails with a top-level error, and PostgreSQL detects no deadlock;
//   - a refusal is only ever NOT_FOUND for an ID that a concurrent request deleted,
//     and a refused mutation changed nothing. Each worker proves the latter with rows
//     only it touches: a private contact that goes into every assign and remove (the
//     worker knows exactly which segments it must be in), a private contact in every
//     deleteContacts (it must survive a refusal), the unique name of every
//     createSegment (a refused one must not exist);
//   - at the end every segment's contactCount, read through the API, is the number of
//     its memberships, and store.CheckCounts, CheckBitmaps and CheckContactCounts
//     find no drift anywhere.
func TestCountsStayExactUnderConcurrentRequests(t *testing.T) {
	a := newAPI(t)
	// The workers talk to a handler of their own, whose log (server errors with their
	// request ID) is shown if the test fails.
	var serverLog logtest.Buffer
	h := server.Handler(a.store, slog.New(slog.NewTextHandler(&serverLog, &slog.HandlerOptions{Level: slog.LevelWarn})),
		server.Config{BatchWait: time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", serverLog.String())
		}
	})
	a.url = srv.URL
	c := mutClient{a}

	pool := &concPool{gone: map[string]bool{}}
	contacts := c.addContacts(phones(600_000, concContacts)...)
	for i, id := range contacts {
		pool.contacts = append(pool.contacts, concContact{id: id, phone: phones(600_000+i, 1)[0]})
	}
	for i := range concSegments {
		pool.segments = append(pool.segments, c.addSegment(fmt.Sprintf("Pool %d", i), contacts[i*5:i*5+20]...))
	}
	members := c.addContacts(phones(610_000, concWorkers)...)
	victims := c.addContacts(phones(620_000, concWorkers*concVictims)...)
	deadlocksBefore := storetest.Deadlocks(t, c.store)

	var next atomic.Int64 // ops handed out
	var newPhones atomic.Int64
	workers := make([]*concWorker, concWorkers)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &concWorker{
			id: i, c: c.on(goroutineTB{t}), rng: rand.New(rand.NewPCG(uint64(i), 2026)), pool: pool,
			member: members[i], in: map[string]bool{}, victims: victims[i*concVictims : (i+1)*concVictims],
			stats: map[string]*[2]int{}, newPhones: &newPhones,
		}
		workers[i] = w
		wg.Go(func() {
			for n := next.Add(1); n <= concOps; n = next.Add(1) {
				w.op(int(n))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}

	// The op mix.
	stats := map[string]*[2]int{}
	done := 0
	for _, w := range workers {
		for op, s := range w.stats {
			if stats[op] == nil {
				stats[op] = &[2]int{}
			}
			stats[op][0] += s[0]
			stats[op][1] += s[1]
			done += s[0] + s[1]
		}
	}
	if done != concOps {
		t.Fatalf("%d ops done, want %d", done, concOps)
	}
	var mix []string
	for _, op := range slices.Sorted(maps.Keys(stats)) {
		mix = append(mix, fmt.Sprintf("%s %d ok + %d refused", op, stats[op][0], stats[op][1]))
	}
	t.Logf("%d ops by %d workers in %v (%.0f ops/s): %s", concOps, concWorkers, elapsed.Round(time.Millisecond),
		float64(concOps)/elapsed.Seconds(), strings.Join(mix, ", "))
	// The store retries a transaction that PostgreSQL broke off in a deadlock, but
	// only after deadlock_timeout (a second): its writers lock in one order and meet
	// none (before they did, this load met 4 to 15 and, once, a request failed).
	if n := storetest.Deadlocks(t, c.store) - deadlocksBefore; n != 0 {
		t.Errorf("PostgreSQL detected %d deadlocks, want none", n)
	}

	// Refusals named only IDs that are gone, and refused mutations changed nothing.
	for _, w := range workers {
		for _, id := range w.notFound {
			if exists(c, id) {
				t.Errorf("worker %d: refused as NOT_FOUND, but %s exists", w.id, id)
			}
		}
		for _, name := range w.refusedNames {
			if n := a.segmentNamed(name); n != 0 {
				t.Errorf("worker %d: createSegment %q was refused, but the segment exists", w.id, name)
			}
		}
		var want []string
		for id, in := range w.in {
			if in && exists(c, id) {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		if got := segmentsOf(c, w.member); !slices.Equal(got, want) {
			t.Errorf("worker %d: its contact is in segments %v, want %v", w.id, got, want)
		}
	}

	// Every count exact, through the API and by the check.
	real := realCounts(c)
	shown := map[string]int{}
	var after any
	for {
		var out struct {
			Segments struct {
				PageInfo struct {
					HasNextPage bool    `json:"hasNextPage"`
					EndCursor   *string `json:"endCursor"`
				} `json:"pageInfo"`
				Nodes []segment `json:"nodes"`
			} `json:"segments"`
		}
		c.do(`query($after: String) { segments(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { id contactCount } } }`,
			map[string]any{"after": after}, &out)
		for _, s := range out.Segments.Nodes {
			shown[s.ID] = s.ContactCount
		}
		if !out.Segments.PageInfo.HasNextPage {
			break
		}
		after = *out.Segments.PageInfo.EndCursor
	}
	if !maps.Equal(shown, real) {
		t.Errorf("contactCount through the API differs from the memberships:\n api %v\n sql %v", shown, real)
	}
	drift, err := a.store.CheckCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) > 0 {
		t.Errorf("CheckCounts reports drift: %+v", drift)
	}
	if drift, err := a.store.CheckBitmaps(context.Background()); err != nil || len(drift) > 0 {
		t.Errorf("CheckBitmaps reports drift: %+v %v", drift, err)
	}
	if drift, err := a.store.CheckContactCounts(context.Background()); err != nil || len(drift) > 0 {
		t.Errorf("CheckContactCounts reports drift: %+v %v", drift, err)
	}
	t.Logf("%d segments at the end (%d of them in the pool), %d memberships", len(real), len(pool.segments), sum(real))
}

// concContact is a contact of the shared pool.
type concContact struct{ id, phone string }

// concPool is what the workers share: slots of segments and contacts they pick from.
// A slot keeps its ID after the row is deleted, until a create or upsert refills it,
// so that the other workers go on sending it for a while: that is how refusals arise.
type concPool struct {
	mu       sync.Mutex
	contacts []concContact
	segments []string
	gone     map[string]bool // deleted by a request that succeeded
}

// pickContacts returns up to n distinct contacts of the pool, at random.
func (p *concPool) pickContacts(rng *rand.Rand, n int) []concContact {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]concContact, 0, n)
	for _, i := range rng.Perm(len(p.contacts))[:min(n, len(p.contacts))] {
		out = append(out, p.contacts[i])
	}
	return out
}

// pickSegments returns up to n distinct segments of the pool, at random.
func (p *concPool) pickSegments(rng *rand.Rand, n int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, n)
	for _, i := range rng.Perm(len(p.segments))[:min(n, len(p.segments))] {
		out = append(out, p.segments[i])
	}
	return out
}

func (p *concPool) markGone(ids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		p.gone[id] = true
	}
}

// goneContacts returns the number of contact slots whose contact was deleted.
func (p *concPool) goneContacts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.contacts {
		if p.gone[c.id] {
			n++
		}
	}
	return n
}

// refillContacts puts new contacts into slots of deleted ones.
func (p *concPool) refillContacts(fresh []concContact) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.contacts {
		if len(fresh) == 0 {
			return
		}
		if p.gone[c.id] {
			p.contacts[i], fresh = fresh[0], fresh[1:]
		}
	}
}

// refillSegment puts a new segment into the slot of a deleted one, if there is one.
func (p *concPool) refillSegment(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, s := range p.segments {
		if p.gone[s] {
			p.segments[i] = id
			return
		}
	}
}

// concWorker is one client of TestCountsStayExactUnderConcurrentRequests.
type concWorker struct {
	id        int
	c         mutClient
	rng       *rand.Rand
	pool      *concPool
	newPhones *atomic.Int64

	// member is the worker's own contact, in every assign and remove it sends; in
	// holds the segments it must be in (less those deleted since).
	member string
	in     map[string]bool
	// victims are the worker's own contacts, one in each deleteContacts it sends.
	victims []string

	stats        map[string]*[2]int // by op: succeeded, refused
	notFound     []string           // IDs that refusals named
	refusedNames []string           // names of refused createSegments
}

// op sends the worker's nth mutation, chosen at random, and checks its outcome.
func (w *concWorker) op(n int) {
	switch r := w.rng.IntN(100); {
	case r < 35:
		w.memberships("assign")
	case r < 55:
		w.memberships("remove")
	case r < 67:
		w.deleteContacts()
	case r < 73:
		w.deleteSegment()
	case r < 85:
		w.createSegment(n)
	default:
		w.upsertContacts()
	}
}

func (w *concWorker) memberships(op string) {
	cs := append(ids(w.pool.pickContacts(w.rng, 1+w.rng.IntN(10))), w.member)
	w.rng.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	ss := w.pool.pickSegments(w.rng, 1+w.rng.IntN(3))
	var p membershipPayload
	if op == "assign" {
		p = w.c.assign(cs, ss)
	} else {
		p = w.c.remove(cs, ss)
	}
	if w.refused(op, p.UserErrors, map[string][]string{"contactIds": cs, "segmentIds": ss}) {
		if len(p.Segments) != 0 {
			w.c.t.Errorf("refused %s returned segments %v", op, p.Segments)
		}
		return
	}
	if got := idsOf(p.Segments); !slices.Equal(got, ss) {
		w.c.t.Errorf("%s returned segments %v, want %v", op, got, ss)
	}
	for _, s := range ss {
		w.in[s] = op == "assign"
	}
}

func (w *concWorker) deleteContacts() {
	ids := ids(w.pool.pickContacts(w.rng, 1+w.rng.IntN(2)))
	var victim string
	if len(w.victims) > 0 {
		victim = w.victims[0]
		ids = append(ids, victim)
	}
	p := w.c.deleteContacts(ids...)
	if w.refused("deleteContacts", p.UserErrors, map[string][]string{"ids": ids}) {
		if victim != "" && !exists(w.c, victim) {
			w.c.t.Errorf("refused deleteContacts %v deleted %s", ids, victim)
		}
		return
	}
	if victim != "" {
		if exists(w.c, victim) {
			w.c.t.Errorf("deleteContacts %v left %s", ids, victim)
		}
		w.victims = w.victims[1:]
	}
	w.pool.markGone(ids...)
}

func (w *concWorker) deleteSegment() {
	ss := w.pool.pickSegments(w.rng, 1)
	if len(ss) == 0 {
		return
	}
	p := w.c.deleteSegment(ss[0])
	if w.refused("deleteSegment", p.UserErrors, map[string][]string{"id": ss}) {
		return
	}
	w.pool.markGone(ss[0])
}

func (w *concWorker) createSegment(n int) {
	name := fmt.Sprintf("Worker %d op %d", w.id, n)
	cs := ids(w.pool.pickContacts(w.rng, w.rng.IntN(5)))
	withMember := w.rng.IntN(2) == 0
	if withMember {
		cs = append(cs, w.member)
	}
	p := w.c.createSegment(map[string]any{"name": name, "contactIds": orEmpty(cs)})
	if w.refused("createSegment", p.UserErrors, map[string][]string{"contactIds": cs}) {
		w.refusedNames = append(w.refusedNames, name)
		if p.Segment != nil {
			w.c.t.Errorf("refused createSegment returned %+v", p.Segment)
		}
		return
	}
	// Nobody else knows the segment yet: its count is exactly its first contacts.
	if p.Segment.ContactCount != len(cs) {
		w.c.t.Errorf("createSegment with %d contacts: contactCount %d", len(cs), p.Segment.ContactCount)
	}
	if withMember {
		w.in[p.Segment.ID] = true
	}
	w.pool.refillSegment(p.Segment.ID)
}

func (w *concWorker) upsertContacts() {
	k := min(max(w.pool.goneContacts(), 1), 5)
	var entries []map[string]any
	var fresh []concContact
	for range k {
		phone := phones(700_000+int(w.newPhones.Add(1)), 1)[0]
		entries = append(entries, map[string]any{"phone": phone})
		fresh = append(fresh, concContact{phone: phone})
	}
	// And a contact of the pool, renamed: created again if it was deleted.
	existing := w.pool.pickContacts(w.rng, 1)
	for _, c := range existing {
		entries = append(entries, map[string]any{"phone": c.phone, "name": "Renamed by " + strconv.Itoa(w.id)})
	}
	p := w.c.upsert(entries...)
	if len(p.UserErrors) > 0 {
		w.c.t.Errorf("upsertContacts refused: %v", p.UserErrors)
		w.count("upsertContacts", true)
		return
	}
	if len(p.Contacts) != len(entries) || p.CreatedCount < k {
		w.c.t.Errorf("upsertContacts of %d new phones: %d contacts, %d created", k, len(p.Contacts), p.CreatedCount)
		return
	}
	for i := range fresh {
		fresh[i].id = p.Contacts[i].ID
	}
	w.pool.refillContacts(fresh)
	w.count("upsertContacts", false)
}

// refused counts the outcome of an op and reports whether it was refused. A refusal
// must name only IDs of the request (in lists, by field) that do not exist; they are
// remembered, to check at the end that they are gone for good.
func (w *concWorker) refused(op string, errs []userError, lists map[string][]string) bool {
	w.count(op, len(errs) > 0)
	for _, e := range errs {
		if e.Code != "NOT_FOUND" || len(e.Field) < 2 || e.Field[0] != "input" {
			w.c.t.Errorf("%s refused with %v; only NOT_FOUND is expected", op, e)
			continue
		}
		list, ok := lists[e.Field[1]]
		i := 0
		if len(e.Field) == 3 {
			var err error
			if i, err = strconv.Atoi(e.Field[2]); err != nil {
				ok = false
			}
		}
		if !ok || i >= len(list) {
			w.c.t.Errorf("%s refused with %v, which names nothing of the request %v", op, e, lists)
			continue
		}
		w.notFound = append(w.notFound, list[i])
	}
	return len(errs) > 0
}

func (w *concWorker) count(op string, refused bool) {
	if w.stats[op] == nil {
		w.stats[op] = &[2]int{}
	}
	if refused {
		w.stats[op][1]++
	} else {
		w.stats[op][0]++
	}
}

func ids(cs []concContact) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.id
	}
	return out
}

// exists reports whether the contact or segment with the global ID exists in the
// client's workspace, asking the database.
func exists(c mutClient, id string) bool {
	c.t.Helper()
	k, n, err := globalid.Decode(id)
	if err != nil {
		c.t.Fatalf("decode %q: %v", id, err)
	}
	table := map[globalid.Kind]string{globalid.Contact: "contacts", globalid.Segment: "segments"}[k]
	var found bool
	if err := c.store.DB().QueryRowContext(context.Background(),
		"SELECT EXISTS (SELECT 1 FROM "+table+" WHERE workspace_id = $1 AND id = $2)", c.ws.ID, n).Scan(&found); err != nil {
		c.t.Fatal(err)
	}
	return found
}

// segmentsOf returns the segments a contact is in, from the database, sorted.
func segmentsOf(c mutClient, contactID string) []string {
	c.t.Helper()
	rows, err := c.store.DB().QueryContext(context.Background(),
		"SELECT segment_id FROM memberships WHERE workspace_id = $1 AND contact_id = $2",
		c.ws.ID, mustDecode(c.t, globalid.Contact, contactID))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			c.t.Fatal(err)
		}
		out = append(out, globalid.Encode(globalid.Segment, id))
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// realCounts returns the number of memberships of each segment of the workspace,
// counted in the database.
func realCounts(c mutClient) map[string]int {
	c.t.Helper()
	rows, err := c.store.DB().QueryContext(context.Background(), `
		SELECT s.id, (SELECT count(*) FROM memberships m WHERE m.workspace_id = s.workspace_id AND m.segment_id = s.id)
		FROM segments s WHERE s.workspace_id = $1`, c.ws.ID)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			c.t.Fatal(err)
		}
		out[globalid.Encode(globalid.Segment, id)] = n
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// goroutineTB lets a goroutine other than the test's use the test clients: a fatal
// failure marks the test failed and ends that goroutine (FailNow may only be called
// from the test's own goroutine).
type goroutineTB struct{ testing.TB }

func (g goroutineTB) Fatal(args ...any) {
	g.TB.Helper()
	g.TB.Error(args...)
	runtime.Goexit()
}

func (g goroutineTB) Fatalf(format string, args ...any) {
	g.TB.Helper()
	g.TB.Errorf(format, args...)
	runtime.Goexit()
}

func (g goroutineTB) FailNow() {
	g.TB.Fail()
	runtime.Goexit()
}
