package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

func requestHash(body string) []byte {
	h := sha256.Sum256([]byte(body))
	return h[:]
}

// TestIdempotencyKeyLifecycle walks a key through its states: claimed, in progress
// for everyone else, a mismatch for another body, done with its response, and free
// again once released.
func TestIdempotencyKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	h, other := requestHash("a"), requestHash("b")

	expect := func(what string, got store.IdempotencyClaim, err error, want store.IdempotencyState) store.IdempotencyClaim {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.State != want {
			t.Fatalf("%s: %v, want %v", what, got.State, want)
		}
		return got
	}

	c, err := s.IdempotencyKey(ctx, ws.ID, "k1", h)
	expect("look up an unknown key", c, err, store.IdempotencyFree)
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", h, time.Minute, 0)
	first := expect("first claim", c, err, store.IdempotencyClaimed)
	if first.TookOver || len(first.Owner) == 0 {
		t.Fatalf("first claim: %+v", first)
	}
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", h, time.Minute, 0)
	expect("second claim", c, err, store.IdempotencyInProgress)
	c, err = s.IdempotencyKey(ctx, ws.ID, "k1", h)
	expect("look up while in progress", c, err, store.IdempotencyInProgress)
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", other, time.Minute, 0)
	expect("claim with another body", c, err, store.IdempotencyMismatch)
	c, err = s.IdempotencyKey(ctx, ws.ID, "k1", other)
	expect("look up with another body", c, err, store.IdempotencyMismatch)

	// Only the holder finishes.
	if err := finish(ctx, s, ws.ID, "k1", []byte("not the owner"), store.StoredResponse{Status: 200, Body: []byte("x")}); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish by another: %v, want ErrIdempotencyClaimLost", err)
	}
	res := store.StoredResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"data":{}}`)}
	if err := finish(ctx, s, ws.ID, "k1", first.Owner, res); err != nil {
		t.Fatal(err)
	}
	for _, lookup := range []func() (store.IdempotencyClaim, error){
		func() (store.IdempotencyClaim, error) {
			return s.ClaimIdempotencyKey(ctx, ws.ID, "k1", h, time.Minute, 0)
		},
		func() (store.IdempotencyClaim, error) { return s.IdempotencyKey(ctx, ws.ID, "k1", h) },
	} {
		c, err = lookup()
		done := expect("after finish", c, err, store.IdempotencyDone)
		if done.Response.Status != res.Status || done.Response.ContentType != res.ContentType {
			t.Fatalf("stored response %+v, want %+v", done.Response, res)
		}
		// The body is read only once the replay was charged: a refused one read a
		// stored answer of megabytes for nothing.
		if done.Response.Body != nil {
			t.Fatalf("the claim or lookup read the stored body (%d bytes)", len(done.Response.Body))
		}
	}
	if body, ok, err := s.IdempotencyResponseBody(ctx, ws.ID, "k1", h); err != nil || !ok || !bytes.Equal(body, res.Body) {
		t.Fatalf("the stored body: %q, %v, %v; want %q", body, ok, err, res.Body)
	}
	if body, ok, err := s.IdempotencyResponseBody(ctx, ws.ID, "k1", other); err != nil || ok || body != nil {
		t.Fatalf("the stored body for another request's body: %q, %v, %v; want none", body, ok, err)
	}
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", other, time.Minute, 0)
	expect("claim a finished key with another body", c, err, store.IdempotencyMismatch)
	if err := finish(ctx, s, ws.ID, "k1", first.Owner, res); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish twice: %v, want ErrIdempotencyClaimLost", err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, ws.ID, "k1", first.Owner); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("release a finished key: %v, want ErrIdempotencyClaimLost", err)
	}

	// A released key is free for the next request, whatever its body.
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k2", h, time.Minute, 0)
	held := expect("claim k2", c, err, store.IdempotencyClaimed)
	if err := s.ReleaseIdempotencyKey(ctx, ws.ID, "k2", held.Owner); err != nil {
		t.Fatal(err)
	}
	c, err = s.IdempotencyKey(ctx, ws.ID, "k2", h)
	expect("look up a released key", c, err, store.IdempotencyFree)
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k2", other, time.Minute, 0)
	expect("claim a released key with another body", c, err, store.IdempotencyClaimed)

	// Keys are per workspace.
	ws2, _ := storetest.Workspace(t, s)
	c, err = s.ClaimIdempotencyKey(ctx, ws2.ID, "k1", other, time.Minute, 0)
	expect("the same key in another workspace", c, err, store.IdempotencyClaimed)
}

// TestIdempotencyKeyKeepsItsCost: the points a request was charged are stored with its
// answer and read back by the claim and the lookup alike, 0 as 0 and none (an answer
// stored before costs were kept) as nil.
func TestIdempotencyKeyKeepsItsCost(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	h := requestHash("a")
	show := func(c *int) string {
		if c == nil {
			return "nil"
		}
		return strconv.Itoa(*c)
	}
	for i, cost := range []*int{new(202), new(0), nil} {
		key := "k" + strconv.Itoa(i)
		c, err := s.ClaimIdempotencyKey(ctx, ws.ID, key, h, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := finish(ctx, s, ws.ID, key, c.Owner, store.StoredResponse{Status: 200, Body: []byte("{}"), Cost: cost}); err != nil {
			t.Fatal(err)
		}
		for _, lookup := range []func() (store.IdempotencyClaim, error){
			func() (store.IdempotencyClaim, error) {
				return s.ClaimIdempotencyKey(ctx, ws.ID, key, h, time.Minute, 0)
			},
			func() (store.IdempotencyClaim, error) { return s.IdempotencyKey(ctx, ws.ID, key, h) },
		} {
			c, err := lookup()
			if err != nil || c.State != store.IdempotencyDone {
				t.Fatalf("%s: %v, %v", key, c.State, err)
			}
			if got := c.Response.Cost; show(got) != show(cost) {
				t.Errorf("%s: cost %s, want %s", key, show(got), show(cost))
			}
		}
	}
}

// TestIdempotencyLeaseTakeover: a claim whose lease ran out goes to the next claim
// with the same body (and only with the same body); its former holder can neither
// finish nor release it any more.
func TestIdempotencyLeaseTakeover(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	h := requestHash("a")

	dead, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Millisecond, 0)
	if err != nil || dead.State != store.IdempotencyClaimed {
		t.Fatalf("claim: %+v, %v", dead, err)
	}
	time.Sleep(20 * time.Millisecond)
	if c, err := s.IdempotencyKey(ctx, ws.ID, "k", h); err != nil || c.State != store.IdempotencyFree {
		t.Fatalf("look up after the lease: %v, %v; want free", c.State, err)
	}
	if c, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", requestHash("b"), time.Minute, 0); err != nil || c.State != store.IdempotencyMismatch {
		t.Fatalf("take over with another body: %v, %v; want mismatch", c.State, err)
	}
	next, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Minute, 0)
	if err != nil || next.State != store.IdempotencyClaimed || !next.TookOver {
		t.Fatalf("take over: %+v, %v", next, err)
	}
	if err := finish(ctx, s, ws.ID, "k", dead.Owner, store.StoredResponse{Status: 200, Body: []byte("late")}); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish by the former holder: %v", err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, ws.ID, "k", dead.Owner); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("release by the former holder: %v", err)
	}
	if c, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Minute, 0); err != nil || c.State != store.IdempotencyInProgress {
		t.Fatalf("claim after the takeover: %v, %v; want in progress", c.State, err)
	}
}

// TestIdempotencyConcurrentClaims: of many simultaneous claims of one key, exactly one
// wins and every other sees it in progress.
func TestIdempotencyConcurrentClaims(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	h := requestHash("a")

	const n = 40
	states := make(chan store.IdempotencyState, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Minute, 0)
			if err != nil {
				t.Error(err)
				return
			}
			states <- c.State
		})
	}
	wg.Wait()
	close(states)
	count := map[store.IdempotencyState]int{}
	for st := range states {
		count[st]++
	}
	if count[store.IdempotencyClaimed] != 1 || count[store.IdempotencyInProgress] != n-1 {
		t.Fatalf("outcomes %v, want 1 claimed and %d in progress", count, n-1)
	}
}

// TestDeleteExpiredIdempotencyKeys: keys older than the retention go, in bounded
// batches; younger ones stay.
func TestDeleteExpiredIdempotencyKeys(t *testing.T) {
	ctx := context.Background()
	s := storetest.Store(t)
	ws, _ := storetest.Workspace(t, s)
	h := requestHash("a")
	for _, k := range []string{"old1", "old2", "old3", "young"} {
		c, err := s.ClaimIdempotencyKey(ctx, ws.ID, k, h, time.Minute, 0)
		if err != nil || c.State != store.IdempotencyClaimed {
			t.Fatalf("claim %s: %+v, %v", k, c, err)
		}
		if k != "young" {
			if err := finish(ctx, s, ws.ID, k, c.Owner, store.StoredResponse{Status: 200, Body: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
		WHERE workspace_id = $1 AND key LIKE 'old%'`, ws.ID); err != nil {
		t.Fatal(err)
	}
	// Other tests' keys are younger than 24 hours: only these three are expired.
	n, err := s.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 2)
	if err != nil || n != 2 {
		t.Fatalf("first batch: %d, %v; want 2", n, err)
	}
	n, err = s.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 2)
	if err != nil || n != 1 {
		t.Fatalf("second batch: %d, %v; want 1", n, err)
	}
	for k, want := range map[string]store.IdempotencyState{"old1": store.IdempotencyFree, "old3": store.IdempotencyFree, "young": store.IdempotencyInProgress} {
		if c, err := s.IdempotencyKey(ctx, ws.ID, k, h); err != nil || c.State != want {
			t.Errorf("%s after the sweep: %v, %v; want %v", k, c.State, err, want)
		}
	}
}

// finish stores res for key without a budget, as FinishIdempotencyKey.
func finish(ctx context.Context, s *store.Store, ws int64, key string, owner []byte, res store.StoredResponse) error {
	_, err := s.FinishIdempotencyKey(ctx, ws, key, owner, res, store.AnswerBudget{})
	return err
}

// TestIdempotencyAnswerBudget: what a workspace's keys keep is counted in its
// idempotency_budgets row, exactly, as the application's role stores it: each key's
// row (IdempotencyRowBytes and 3 bytes per byte of key) and its answer's body. An
// answer that would take the workspace over its budget is stored as the budget's
// answer (counted in its place), while another workspace keeps its own; a finish
// whose claim was lost counts nothing; answers stored at once never take the whole
// answers over the budget, and the counter equals the truth; the sweep gives back
// what the keys it deletes kept, and the next answer is kept whole again. Keys kept
// before the count (not budgeted) are neither counted nor given back; keys an older
// server budgeted (by their bodies alone) give their bodies back.
func TestIdempotencyAnswerBudget(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{})
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	h := requestHash("a")
	answer := store.StoredResponse{Status: 200, ContentType: "application/json", Body: bytes.Repeat([]byte("x"), 1000)}
	instead := []byte(`{"not":"kept"}`)
	row := func(key string) int64 { return store.IdempotencyRowBytes + 3*int64(len(key)) }
	// Two answers and their rows fit, not three.
	budget := store.AnswerBudget{Bytes: 2*(1000+row("a0")) + 10, Status: 410, ContentType: "application/json", Body: instead}
	claim := func(ws int64, key string) []byte {
		t.Helper()
		c, err := app.ClaimIdempotencyKey(store.WithWorkspace(ctx, ws), ws, key, h, time.Minute, 0)
		if err != nil || c.State != store.IdempotencyClaimed {
			t.Fatalf("claim %s: %+v, %v", key, c, err)
		}
		return c.Owner
	}
	keep := func(ws int64, key string) bool {
		t.Helper()
		whole, err := app.FinishIdempotencyKey(store.WithWorkspace(ctx, ws), ws, key, claim(ws, key), answer, budget)
		if err != nil {
			t.Fatalf("finish %s: %v", key, err)
		}
		return whole
	}
	// counted is the workspace's counter, and what its budgeted keys keep: their rows
	// and bodies, or the bodies alone of those an older server budgeted.
	counted := func(ws int64) (counter, kept int64) {
		t.Helper()
		err := owner.DB().QueryRowContext(ctx, `SELECT coalesce((SELECT bytes FROM idempotency_budgets WHERE workspace_id = $1), 0),
			coalesce((SELECT sum(octet_length(body) + CASE WHEN budget_bytes IS NULL THEN 0 ELSE $2 + 3 * octet_length(key) END)
			          FROM idempotency_keys WHERE workspace_id = $1 AND budgeted), 0)`, ws, store.IdempotencyRowBytes).Scan(&counter, &kept)
		if err != nil {
			t.Fatal(err)
		}
		return counter, kept
	}
	status := func(ws int64, key string) int {
		t.Helper()
		c, err := app.IdempotencyKey(store.WithWorkspace(ctx, ws), ws, key, h)
		if err != nil || c.State != store.IdempotencyDone {
			t.Fatalf("%s: %v, %v", key, c.State, err)
		}
		return c.Response.Status
	}

	// An answer kept before the count, and one an older server counted by its body.
	for _, key := range []string{"older", "old"} {
		if err := finish(ctx, owner, a.ID, key, claim(a.ID, key), answer); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := owner.DB().ExecContext(ctx, `UPDATE idempotency_keys SET budgeted = key = 'old', budget_bytes = NULL WHERE key IN ('older', 'old');
		UPDATE idempotency_budgets SET bytes = 1000`); err != nil {
		t.Fatal(err)
	}
	budget.Bytes += 1000
	for i, want := range []bool{true, true, false} {
		if whole := keep(a.ID, fmt.Sprintf("a%d", i)); whole != want {
			t.Errorf("a%d kept whole: %v, want %v", i, whole, want)
		}
	}
	if s := status(a.ID, "a2"); s != 410 {
		t.Errorf("a2 is kept as %d, want the budget's 410", s)
	}
	want := 1000 + 2*(1000+row("a0")) + row("a2") + int64(len(instead))
	if counter, kept := counted(a.ID); counter != want || counter != kept {
		t.Errorf("A's counter %d, what its budgeted keys keep %d; want both %d", counter, kept, want)
	}
	if !keep(b.ID, "b0") || status(b.ID, "b0") != 200 {
		t.Error("another workspace's answer was not kept whole")
	}
	lost := claim(a.ID, "lost")
	if _, err := app.FinishIdempotencyKey(store.WithWorkspace(ctx, a.ID), a.ID, "lost", []byte("not the owner"), answer, budget); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish by another: %v, want ErrIdempotencyClaimLost", err)
	}
	if err := app.ReleaseIdempotencyKey(store.WithWorkspace(ctx, a.ID), a.ID, "lost", lost); err != nil {
		t.Fatal(err)
	}
	if counter, kept := counted(a.ID); counter != kept {
		t.Errorf("after a lost claim, A's counter %d, what its budgeted keys keep %d", counter, kept)
	}

	// 16 answers at once, in a workspace whose counter exists: at most 5 fit, keys
	// of 2 and 3 characters.
	c, _ := storetest.Workspace(t, owner)
	budget.Bytes = 1000 + row("c") + 4*(1000+row("c10")) + 10
	keep(c.ID, "c")
	var wg sync.WaitGroup
	var mu sync.Mutex
	wholes := 1
	for i := range 16 {
		key := fmt.Sprintf("c%d", i)
		o := claim(c.ID, key)
		wg.Go(func() {
			whole, err := app.FinishIdempotencyKey(store.WithWorkspace(ctx, c.ID), c.ID, key, o, answer, budget)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if whole {
				wholes++
			}
		})
	}
	wg.Wait()
	if counter, kept := counted(c.ID); wholes != 5 || counter != kept {
		t.Errorf("concurrent answers: %d kept whole, want 5; the counter %d, what the budgeted keys keep %d", wholes, counter, kept)
	}

	// The sweep, as the application's role calls it.
	if _, err := owner.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
		WHERE workspace_id = $1 AND key IN ('older', 'old', 'a0', 'a1')`, a.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := app.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 1000); err != nil || n != 4 {
		t.Fatalf("the sweep: %d, %v; want 4 keys", n, err)
	}
	if counter, kept := counted(a.ID); counter != row("a2")+int64(len(instead)) || counter != kept {
		t.Errorf("after the sweep, A's counter %d, what its budgeted keys keep %d; want both %d", counter, kept, row("a2")+int64(len(instead)))
	}
	if !keep(a.ID, "a3") {
		t.Error("after the sweep, an answer was not kept whole")
	}
	for _, ws := range []int64{b.ID, c.ID} {
		if counter, kept := counted(ws); counter != kept {
			t.Errorf("after the sweep, workspace %d's counter %d, what its budgeted keys keep %d", ws, counter, kept)
		}
	}
}

// TestIdempotencyKeyLimit: a claim's limit refuses a new key of a workspace whose
// kept keys count it or more (IdempotencyOverBudget), inserting nothing, while a key
// the workspace already keeps is found as before (replayed, waited for, taken over
// when its lease ran out), another workspace claims its keys, a claim without a limit
// is not refused, and the sweep makes room again. Counting answers alone, keys kept
// without their answers were never refused: 640 bytes each, for a day.
func TestIdempotencyKeyLimit(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{})
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	h := requestHash("a")
	answer := store.StoredResponse{Status: 200, ContentType: "application/json", Body: bytes.Repeat([]byte("x"), 100)}
	row := store.IdempotencyRowBytes + 3*int64(len("k00"))
	// Answers kept whole up to the budget, new keys refused at twice it.
	budget := store.AnswerBudget{Bytes: 6*(row+100) + 50, Status: 410, ContentType: "application/json", Body: []byte(`{"not":"kept"}`)}
	limit := 2 * budget.Bytes
	claim := func(ws int64, key string, lease time.Duration, limit int64) store.IdempotencyClaim {
		t.Helper()
		c, err := app.ClaimIdempotencyKey(store.WithWorkspace(ctx, ws), ws, key, h, lease, limit)
		if err != nil {
			t.Fatalf("claim %s: %v", key, err)
		}
		return c
	}
	keys := func(ws int64) (n int64) {
		t.Helper()
		if err := owner.DB().QueryRowContext(ctx, `SELECT count(*) FROM idempotency_keys WHERE workspace_id = $1`, ws).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	kept := 0
	for i := range 100 {
		key := fmt.Sprintf("k%02d", i)
		c := claim(a.ID, key, time.Minute, limit)
		if c.State == store.IdempotencyOverBudget {
			break
		}
		if c.State != store.IdempotencyClaimed {
			t.Fatalf("claim %s: %v", key, c.State)
		}
		if _, err := app.FinishIdempotencyKey(store.WithWorkspace(ctx, a.ID), a.ID, key, c.Owner, answer, budget); err != nil {
			t.Fatal(err)
		}
		kept++
	}
	// 6 answers kept whole (2,094 bytes of the budget's 2,144), then 9 keys without
	// theirs (263 bytes each: the row and the 410), the last taking the count past
	// the limit of 4,288: the next key is refused.
	var counter int64
	if err := owner.DB().QueryRowContext(ctx, `SELECT bytes FROM idempotency_budgets WHERE workspace_id = $1`, a.ID).Scan(&counter); err != nil {
		t.Fatal(err)
	}
	if want := 6 + (limit-6*(row+100)+row+14-1)/(row+14); int64(kept) != want || counter < limit || counter-(row+14) >= limit {
		t.Errorf("%d keys kept before the refusal, want %d; the count %d, the limit %d", kept, want, counter, limit)
	}
	if n := keys(a.ID); n != int64(kept) {
		t.Errorf("the refused claim left a row: %d keys, %d kept", n, kept)
	}

	// Keys the workspace keeps are found as before.
	if c := claim(a.ID, "k00", time.Minute, limit); c.State != store.IdempotencyDone || c.Response.Status != 200 {
		t.Errorf("a kept key over the limit: %v %d, want done 200", c.State, c.Response.Status)
	}
	if c := claim(a.ID, "k00", time.Minute, limit); c.State != store.IdempotencyDone {
		t.Errorf("a kept key over the limit, again: %v", c.State)
	}
	// A claim made before the workspace reached the limit, in progress, then dead.
	if _, err := owner.DB().ExecContext(ctx, `INSERT INTO idempotency_keys (workspace_id, key, request_hash, owner, locked_until)
		VALUES ($1, 'running', $2, 'o', now() + interval '1 minute'), ($1, 'dead', $2, 'o', now() - interval '1 second')`, a.ID, h); err != nil {
		t.Fatal(err)
	}
	if c := claim(a.ID, "running", time.Minute, limit); c.State != store.IdempotencyInProgress {
		t.Errorf("a key in progress over the limit: %v", c.State)
	}
	if c := claim(a.ID, "dead", time.Minute, limit); c.State != store.IdempotencyClaimed || !c.TookOver {
		t.Errorf("a dead claim over the limit: %v, took over %v; want claimed", c.State, c.TookOver)
	}
	if c := claim(a.ID, "k00", time.Minute, 0); c.State != store.IdempotencyDone {
		t.Errorf("a kept key without a limit: %v", c.State)
	}
	if c := claim(a.ID, "unlimited", time.Minute, 0); c.State != store.IdempotencyClaimed {
		t.Errorf("a new key without a limit: %v", c.State)
	}
	if c := claim(b.ID, "k00", time.Minute, limit); c.State != store.IdempotencyClaimed {
		t.Errorf("another workspace's new key: %v", c.State)
	}
	if c := claim(a.ID, "new", time.Minute, limit); c.State != store.IdempotencyOverBudget {
		t.Errorf("a new key over the limit: %v", c.State)
	}

	// The sweep gives two keys' bytes back: a new key is claimed again.
	if _, err := owner.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
		WHERE workspace_id = $1 AND key IN ('k00', 'k01')`, a.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := app.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 1000); err != nil || n != 2 {
		t.Fatalf("the sweep: %d, %v; want 2 keys", n, err)
	}
	if c := claim(a.ID, "new", time.Minute, limit); c.State != store.IdempotencyClaimed {
		t.Errorf("a new key after the sweep: %v", c.State)
	}
}
