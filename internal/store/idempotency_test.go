package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
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
	if err := s.FinishIdempotencyKey(ctx, ws.ID, "k1", []byte("not the owner"), store.StoredResponse{Status: 200, Body: []byte("x")}); !errors.Is(err, store.ErrIdempotencyClaimLost) {
		t.Fatalf("finish by another: %v, want ErrIdempotencyClaimLost", err)
	}
	res := store.StoredResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"data":{}}`)}
	if err := s.FinishIdempotencyKey(ctx, ws.ID, "k1", first.Owner, res); err != nil {
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
	if err := s.FinishIdempotencyKey(ctx, ws.ID, "k1", first.Owner, res); !errors.Is(err, store.ErrIdempotencyClaimLost) {
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
		if err := s.FinishIdempotencyKey(ctx, ws.ID, key, c.Owner, store.StoredResponse{Status: 200, Body: []byte("{}"), Cost: cost}); err != nil {
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
	if err := s.FinishIdempotencyKey(ctx, ws.ID, "k", dead.Owner, store.StoredResponse{Status: 200, Body: []byte("late")}); !errors.Is(err, store.ErrIdempotencyClaimLost) {
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
			if err := s.FinishIdempotencyKey(ctx, ws.ID, k, c.Owner, store.StoredResponse{Status: 200, Body: []byte("{}")}); err != nil {
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
