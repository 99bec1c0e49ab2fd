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
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", h, time.Minute)
	first := expect("first claim", c, err, store.IdempotencyClaimed)
	if first.TookOver || len(first.Owner) == 0 {
		t.Fatalf("first claim: %+v", first)
	}
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", h, time.Minute)
	expect("second claim", c, err, store.IdempotencyInProgress)
	c, err = s.IdempotencyKey(ctx, ws.ID, "k1", h)
	expect("look up while in progress", c, err, store.IdempotencyInProgress)
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", other, time.Minute)
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
		func() (store.IdempotencyClaim, error) { return s.ClaimIdempotencyKey(ctx, ws.ID, "k1", h, time.Minute) },
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
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k1", other, time.Minute)
	expect("claim a finished key with another body", c, err, store.IdempotencyMismatch)
	if err := finish(ctx, s, ws.ID, "k1", first.Owner, res); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish twice: %v, want ErrIdempotencyClaimLost", err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, ws.ID, "k1", first.Owner); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("release a finished key: %v, want ErrIdempotencyClaimLost", err)
	}

	// A released key is free for the next request, whatever its body.
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k2", h, time.Minute)
	held := expect("claim k2", c, err, store.IdempotencyClaimed)
	if err := s.ReleaseIdempotencyKey(ctx, ws.ID, "k2", held.Owner); err != nil {
		t.Fatal(err)
	}
	c, err = s.IdempotencyKey(ctx, ws.ID, "k2", h)
	expect("look up a released key", c, err, store.IdempotencyFree)
	c, err = s.ClaimIdempotencyKey(ctx, ws.ID, "k2", other, time.Minute)
	expect("claim a released key with another body", c, err, store.IdempotencyClaimed)

	// Keys are per workspace.
	ws2, _ := storetest.Workspace(t, s)
	c, err = s.ClaimIdempotencyKey(ctx, ws2.ID, "k1", other, time.Minute)
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
		c, err := s.ClaimIdempotencyKey(ctx, ws.ID, key, h, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := finish(ctx, s, ws.ID, key, c.Owner, store.StoredResponse{Status: 200, Body: []byte("{}"), Cost: cost}); err != nil {
			t.Fatal(err)
		}
		for _, lookup := range []func() (store.IdempotencyClaim, error){
			func() (store.IdempotencyClaim, error) { return s.ClaimIdempotencyKey(ctx, ws.ID, key, h, time.Minute) },
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

	dead, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Millisecond)
	if err != nil || dead.State != store.IdempotencyClaimed {
		t.Fatalf("claim: %+v, %v", dead, err)
	}
	time.Sleep(20 * time.Millisecond)
	if c, err := s.IdempotencyKey(ctx, ws.ID, "k", h); err != nil || c.State != store.IdempotencyFree {
		t.Fatalf("look up after the lease: %v, %v; want free", c.State, err)
	}
	if c, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", requestHash("b"), time.Minute); err != nil || c.State != store.IdempotencyMismatch {
		t.Fatalf("take over with another body: %v, %v; want mismatch", c.State, err)
	}
	next, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Minute)
	if err != nil || next.State != store.IdempotencyClaimed || !next.TookOver {
		t.Fatalf("take over: %+v, %v", next, err)
	}
	if err := finish(ctx, s, ws.ID, "k", dead.Owner, store.StoredResponse{Status: 200, Body: []byte("late")}); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish by the former holder: %v", err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, ws.ID, "k", dead.Owner); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("release by the former holder: %v", err)
	}
	if c, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Minute); err != nil || c.State != store.IdempotencyInProgress {
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
			c, err := s.ClaimIdempotencyKey(ctx, ws.ID, "k", h, time.Minute)
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
		c, err := s.ClaimIdempotencyKey(ctx, ws.ID, k, h, time.Minute)
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

// TestIdempotencyAnswerBudget: the bodies a workspace's keys keep are counted in its
// idempotency_budgets row, exactly, as the application's role stores them: an answer
// that would take the workspace over its budget is stored as the budget's answer
// (counted in its place), while another workspace keeps its own; a finish whose claim
// was lost counts nothing; answers stored at once never take the whole answers over
// the budget; the sweep gives back what the keys it deletes kept, and the next answer
// is kept whole again. Keys kept before the count (not budgeted) are neither counted
// nor given back.
func TestIdempotencyAnswerBudget(t *testing.T) {
	ctx := context.Background()
	owner, app := storetest.NewStores(t, store.Options{})
	a, _ := storetest.Workspace(t, owner)
	b, _ := storetest.Workspace(t, owner)
	h := requestHash("a")
	answer := store.StoredResponse{Status: 200, ContentType: "application/json", Body: bytes.Repeat([]byte("x"), 1000)}
	budget := store.AnswerBudget{Bytes: 2500, Status: 410, ContentType: "application/json", Body: []byte(`{"not":"kept"}`)}
	claim := func(ws int64, key string) []byte {
		t.Helper()
		c, err := app.ClaimIdempotencyKey(store.WithWorkspace(ctx, ws), ws, key, h, time.Minute)
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
	// counted is the workspace's counter, and the bodies of its budgeted keys.
	counted := func(ws int64) (counter, kept int64) {
		t.Helper()
		err := owner.DB().QueryRowContext(ctx, `SELECT coalesce((SELECT bytes FROM idempotency_budgets WHERE workspace_id = $1), 0),
			coalesce((SELECT sum(octet_length(body)) FROM idempotency_keys WHERE workspace_id = $1 AND budgeted), 0)`, ws).Scan(&counter, &kept)
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

	// An answer kept by an older server: outside the budget.
	if err := finish(ctx, owner, a.ID, "older", claim(a.ID, "older"), answer); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.DB().ExecContext(ctx, "UPDATE idempotency_keys SET budgeted = false WHERE key = 'older'"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.DB().ExecContext(ctx, "UPDATE idempotency_budgets SET bytes = 0"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false} {
		if whole := keep(a.ID, fmt.Sprintf("a%d", i)); whole != want {
			t.Errorf("a%d kept whole: %v, want %v", i, whole, want)
		}
	}
	if s := status(a.ID, "a2"); s != 410 {
		t.Errorf("a2 is kept as %d, want the budget's 410", s)
	}
	if counter, kept := counted(a.ID); counter != 2000+int64(len(budget.Body)) || counter != kept {
		t.Errorf("A's counter %d, its budgeted bodies %d; want both %d", counter, kept, 2000+len(budget.Body))
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
		t.Errorf("after a lost claim, A's counter %d, its budgeted bodies %d", counter, kept)
	}

	// 16 answers at once, in a workspace whose counter exists: at most 5 fit.
	c, _ := storetest.Workspace(t, owner)
	budget.Bytes = 5500
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
		t.Errorf("concurrent answers: %d kept whole, want 5; the counter %d, the budgeted bodies %d", wholes, counter, kept)
	}

	// The sweep, as the application's role calls it.
	budget.Bytes = 2500
	if _, err := owner.DB().ExecContext(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
		WHERE workspace_id = $1 AND key IN ('older', 'a0', 'a1')`, a.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := app.DeleteExpiredIdempotencyKeys(ctx, 24*time.Hour, 1000); err != nil || n != 3 {
		t.Fatalf("the sweep: %d, %v; want 3 keys", n, err)
	}
	if counter, kept := counted(a.ID); counter != int64(len(budget.Body)) || counter != kept {
		t.Errorf("after the sweep, A's counter %d, its budgeted bodies %d; want both %d", counter, kept, len(budget.Body))
	}
	if !keep(a.ID, "a3") {
		t.Error("after the sweep, an answer was not kept whole")
	}
	for _, ws := range []int64{b.ID, c.ID} {
		if counter, kept := counted(ws); counter != kept {
			t.Errorf("after the sweep, workspace %d's counter %d, its budgeted bodies %d", ws, counter, kept)
		}
	}
}
