package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAdmitWaitEnds: a request waiting for admission is refused with 503 and
// Retry-After when its deadline passes, and gets no answer when its client goes; the
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
	if rec.Body.Len() != 0 || rec.Header().Get("Retry-After") != "" {
		t.Errorf("client gone while waiting: answered %d %s", rec.Code, rec.Body)
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
