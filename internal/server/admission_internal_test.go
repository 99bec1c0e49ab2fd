package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segments/segments/graph"
)

// TestAdmitWaitEnds: a request waiting for admission is refused with 503 and
// Retry-After when its deadline passes, and when it is cancelled (its client gone, or
// half-closed; a shutdown's is TestShutdownAnswersQueuedRequests); the
// running request is not disturbed, and its slot admits the next.
func TestAdmitWaitEnds(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := admit(1, 5, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}))
	running := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil))
		running <- rec
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	// Against the deadline itself, not a clock read after the context was made: a
	// loaded machine can take milliseconds between the two.
	deadline, _ := ctx.Deadline()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil).WithContext(ctx))
	if early := time.Until(deadline); early > 0 {
		t.Errorf("refused %v before its deadline", early)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), `"code":"SERVICE_UNAVAILABLE"`) {
		t.Errorf("deadline while waiting: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}

	ctx, giveUp := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, giveUp)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil).WithContext(ctx))
	// Answered as at its deadline: a client that only half-closed still reads, and
	// an unanswered request is an empty 200 to it.
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"code":"SERVICE_UNAVAILABLE"`) {
		t.Errorf("cancelled while waiting: answered %d %s", rec.Code, rec.Body)
	}

	release <- struct{}{}
	if rec := <-running; rec.Code != http.StatusOK {
		t.Errorf("the running request: %d", rec.Code)
	}
	go func() { <-started; release <- struct{}{} }()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("after the slot freed: %d %s", rec.Code, rec.Body)
	}
}

// TestAdmitPerCallerWaitEnds: a caller's request waiting for its slot is refused with
// 429 and Retry-After when its deadline passes or it is cancelled; callers are
// counted apart; and a caller's gate is gone once none of its
// requests is in flight, so that idle callers hold no memory.
func TestAdmitPerCallerWaitEnds(t *testing.T) {
	type callerKey struct{}
	started, release := make(chan struct{}), make(chan struct{})
	h := admitPerCaller(1, 5, func(ctx context.Context) string { return ctx.Value(callerKey{}).(string) },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started <- struct{}{}
			<-release
		}))
	request := func(ctx context.Context, caller string) *http.Request {
		return httptest.NewRequest(http.MethodPost, "/graphql", nil).WithContext(context.WithValue(ctx, callerKey{}, caller))
	}
	running := make(chan *httptest.ResponseRecorder, 2)
	for _, caller := range []string{"key:1", "key:2"} {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(context.Background(), caller))
			running <- rec
		}()
		<-started // one request of each caller runs: callers are counted apart
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(ctx, "key:1"))
	if early := time.Until(deadline); early > 0 {
		t.Errorf("refused %v before its deadline", early)
	}
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" ||
		!strings.Contains(rec.Body.String(), `"code":"TOO_MANY_CONCURRENT_REQUESTS"`) {
		t.Errorf("deadline while waiting: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}

	ctx, giveUp := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, giveUp)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, request(ctx, "key:1"))
	// Answered as at its deadline (see TestAdmitWaitEnds).
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), `"code":"TOO_MANY_CONCURRENT_REQUESTS"`) {
		t.Errorf("cancelled while waiting: answered %d %s", rec.Code, rec.Body)
	}

	for range 2 {
		release <- struct{}{}
		if rec := <-running; rec.Code != http.StatusOK {
			t.Errorf("a running request: %d", rec.Code)
		}
	}
	c := h.(*keyedAdmission)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.gates); n != 0 {
		t.Errorf("%d callers still have a gate with no request in flight", n)
	}
}

// TestWaitingYieldsTheServersPlace: a request waiting for its caller's turn
// (admitPerCaller) gives up its place among admit's running requests, so that another
// caller's request runs meanwhile where it would have been refused; and takes a place
// back when its turn comes.
func TestWaitingYieldsTheServersPlace(t *testing.T) {
	type callerKey struct{}
	started, release := make(chan string), make(chan struct{})
	// Two running and none waiting: a's first request and b's fill it.
	h := admit(2, 0, admitPerCaller(1, 5, func(ctx context.Context) string { return ctx.Value(callerKey{}).(string) },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started <- r.Context().Value(callerKey{}).(string)
			<-release
		})))
	send := func(caller string) <-chan int {
		code := make(chan int, 1)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil).WithContext(context.WithValue(context.Background(), callerKey{}, caller)))
			code <- rec.Code
		}()
		return code
	}
	first := send("a")
	<-started
	second := send("a") // waits for a's turn
	time.Sleep(50 * time.Millisecond)
	other := send("b")
	select {
	case c := <-started:
		if c != "b" {
			t.Fatalf("%s ran while a's first request held its turn", c)
		}
	case code := <-other:
		t.Fatalf("another caller, while a's second request waited for a's turn: %d, want it run", code)
	}
	// a's first ends: its second takes a's turn and the place it left.
	release <- struct{}{}
	if code := <-first; code != http.StatusOK {
		t.Errorf("a's first: %d", code)
	}
	if c := <-started; c != "a" {
		t.Fatalf("%s ran, want a's second", c)
	}
	for range 2 {
		release <- struct{}{}
	}
	if a, b := <-second, <-other; a != http.StatusOK || b != http.StatusOK {
		t.Errorf("a's second and b: %d %d", a, b)
	}
}

// TestKeysPerWorkspace: the API keys of a workspace run at most its bound less the
// places kept for its users, at least one, and have no bound of their own when
// nothing is kept for users: no sessions, no reserve, or no workspace bound.
func TestKeysPerWorkspace(t *testing.T) {
	for _, c := range []struct {
		workspace, reserved int
		sessions            bool
		want                int
	}{
		{8, 2, true, 6},
		{3, 1, true, 2},
		{8, 8, true, 1},
		{8, 20, true, 1},
		{8, 2, false, -1},
		{8, -1, true, -1},
		{-1, 2, true, -1},
	} {
		if got := keysPerWorkspace(c.workspace, c.reserved, c.sessions); got != c.want {
			t.Errorf("keysPerWorkspace(%d, %d, %v) = %d, want %d", c.workspace, c.reserved, c.sessions, got, c.want)
		}
	}
}

// TestShutdownAnswersQueuedRequests: a request waiting for its turn (admit's, or its
// caller's) when a shutdown cancels the requests still in flight (cause
// graph.ErrShuttingDown) is answered as the running ones are, 503 UNAVAILABLE with
// Retry-After, not as the server's or its caller's excess: its caller's were answered
// 429 TOO_MANY_CONCURRENT_REQUESTS, and logged and counted as refusals.
func TestShutdownAnswersQueuedRequests(t *testing.T) {
	type callerKey struct{}
	for name, wrap := range map[string]func(http.Handler) http.Handler{
		"admit": func(next http.Handler) http.Handler { return admit(1, 5, next) },
		"admitPerCaller": func(next http.Handler) http.Handler {
			return admitPerCaller(1, 5, func(ctx context.Context) string { return ctx.Value(callerKey{}).(string) }, next)
		},
	} {
		t.Run(name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			h := wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				<-release
			}))
			base, shutDown := context.WithCancelCause(context.WithValue(context.Background(), callerKey{}, "key:1"))
			defer shutDown(nil)
			running := make(chan *httptest.ResponseRecorder, 1)
			go func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil).WithContext(base))
				running <- rec
			}()
			<-started
			time.AfterFunc(50*time.Millisecond, func() { shutDown(graph.ErrShuttingDown) })
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", nil).WithContext(base))
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" ||
				!strings.Contains(rec.Body.String(), `"code":"UNAVAILABLE"`) || !strings.Contains(rec.Body.String(), "shutting down") {
				t.Errorf("waiting at a shutdown: %d %v %s", rec.Code, rec.Header(), rec.Body)
			}
			release <- struct{}{}
			<-running
		})
	}
}
