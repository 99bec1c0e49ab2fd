package idempotency

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
)

func TestValidKey(t *testing.T) {
	for key, want := range map[string]bool{
		"":                                     false,
		"a":                                    true,
		strings.Repeat("k", 255):               true,
		strings.Repeat("k", 256):               false,
		"550e8400-e29b-41d4-a716-446655440000": true,
		"!~":                                   true,
		"a b":                                  false,
		"a\tb":                                 false,
		"a\x00b":                               false,
		"a\x7fb":                               false,
		"clé":                                  false,
	} {
		if got := ValidKey(key); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDefinitive(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   bool
	}{
		{200, `{"data":{"createSegment":{"segment":null,"userErrors":[{"code":"TAKEN"}]}}}`, true},
		{200, `{"errors":[{"message":"bad cursor","extensions":{"code":"BAD_USER_INPUT"}}],"data":null}`, true},
		{200, `{"errors":[{"message":"slow","extensions":{"code":"TIMEOUT"}}],"data":null}`, false},
		{200, `{"errors":[{"message":"x","extensions":{"code":"INTERNAL_SERVER_ERROR","requestId":"r"}}],"data":{"a":null}}`, false},
		{200, `{"errors":[{"message":"x","extensions":{"code":"UNAVAILABLE"}}],"data":null}`, false},
		{200, `{"errors":[{"message":"PersistedQueryNotFound","extensions":{"code":"PERSISTED_QUERY_NOT_FOUND"}}]}`, false},
		{200, `{"errors":[{"message":"read only","extensions":{"code":"FORBIDDEN"}}]}`, false},
		{200, `{"errors":[{"message":"no code"}],"data":null}`, true},
		{200, `{"data":null}`, true},
		// Refused before it ran: a retry is refused alike, and nothing is kept.
		{200, `{"errors":[{"message":"Unknown argument","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`, false},
		{200, `{"errors":[{"message":"Unexpected <EOF>","extensions":{"code":"GRAPHQL_PARSE_FAILED"}}],"extensions":{"cost":{}}}`, false},
		{200, `not json`, false},
		{200, ``, false},
		{422, `{"errors":[{"message":"invalid","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}`, false},
		{500, `{}`, false},
	} {
		if got := definitive(store.StoredResponse{Status: c.status, Body: []byte(c.body)}); got != c.want {
			t.Errorf("definitive(%d %s) = %v, want %v", c.status, c.body, got, c.want)
		}
	}
}

// panicStore fails the test when the middleware touches the store.
type panicStore struct{ Store }

// TestMiddlewarePassesWithoutKey: without the header, or on GET, the handler runs as
// it is and the store is never asked.
func TestMiddlewarePassesWithoutKey(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ran := 0
	h := Middleware(panicStore{}, log, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran++
		w.Write([]byte(`{"data":{}}`))
	}))
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{}`)),
		withKey(httptest.NewRequest(http.MethodGet, "/graphql?query={a}", nil), "k"),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get(HeaderReplayed) != "" {
			t.Errorf("%s: %d %v", req.Method, rec.Code, rec.Header())
		}
	}
	if ran != 2 {
		t.Errorf("handler ran %d times, want 2", ran)
	}
}

// TestMiddlewareRefusals: invalid keys, a missing workspace and an oversized body are
// refused before the store or the handler are reached.
func TestMiddlewareRefusals(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := Middleware(panicStore{}, log, Options{MaxBodyBytes: 10})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler ran")
	}))
	ws := crm.Workspace{ID: 1}
	for _, c := range []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"empty key", withWorkspace(withKey(post(`{}`), ""), ws), 400, CodeInvalidKey},
		{"control character", withWorkspace(withKey(post(`{}`), "a\x01"), ws), 400, CodeInvalidKey},
		{"two keys", withWorkspace(withKey(withKey(post(`{}`), "a"), "b"), ws), 400, CodeInvalidKey},
		{"no workspace", withKey(post(`{}`), "k"), 500, "INTERNAL_SERVER_ERROR"},
		{"body too large", withWorkspace(withKey(post(`{"query":"mutation"}`), "k"), ws), 413, CodeTooLarge},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, c.req)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), `"code":"`+c.code+`"`) {
			t.Errorf("%s: %d %s; want %d %s", c.name, rec.Code, rec.Body, c.status, c.code)
		}
	}
}

func post(body string) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
}

func withKey(r *http.Request, key string) *http.Request {
	r.Header.Add(HeaderKey, key)
	return r
}

func withWorkspace(r *http.Request, ws crm.Workspace) *http.Request {
	return r.WithContext(auth.WithWorkspace(r.Context(), ws))
}

// flakyStore is a store whose claims succeed and whose finish fails: the answer still
// reaches the client, and the claim is released for a retry.
type flakyStore struct {
	Store
	released int
}

func (f *flakyStore) ClaimIdempotencyKey(context.Context, int64, string, []byte, time.Duration, int64) (store.IdempotencyClaim, error) {
	return store.IdempotencyClaim{State: store.IdempotencyClaimed, Owner: []byte("o")}, nil
}

func (f *flakyStore) FinishIdempotencyKey(context.Context, int64, string, []byte, store.StoredResponse, store.AnswerBudget) (bool, error) {
	return false, io.ErrUnexpectedEOF
}

func (f *flakyStore) ReleaseIdempotencyKey(context.Context, int64, string, []byte) error {
	f.released++
	return nil
}

func (f *flakyStore) DeleteExpiredIdempotencyKeys(context.Context, time.Duration, int) (int, error) {
	return 0, nil
}

func TestFinishFailureReleases(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &flakyStore{}
	h := Middleware(s, log, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"echo":` + string(body) + `}}`))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withWorkspace(withKey(post(`{"a":1}`), "k"), crm.Workspace{ID: 1}))
	if rec.Code != 200 || rec.Body.String() != `{"data":{"echo":{"a":1}}}` || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("answer %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if s.released != 1 {
		t.Errorf("released %d times, want 1", s.released)
	}
}

// downStore is a store that cannot be reached.
type downStore struct{ Store }

func (downStore) ClaimIdempotencyKey(context.Context, int64, string, []byte, time.Duration, int64) (store.IdempotencyClaim, error) {
	return store.IdempotencyClaim{}, io.ErrUnexpectedEOF
}

// TestStoreDownIsUnavailable: when the keys cannot be read, nothing runs, and the
// answer says when to try again, as the server's other 503s do.
func TestStoreDownIsUnavailable(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := Middleware(downStore{}, log, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler ran")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withWorkspace(withKey(post(`{}`), "k"), crm.Workspace{ID: 1}))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"code":"SERVICE_UNAVAILABLE"`) ||
		rec.Header().Get("Retry-After") == "" {
		t.Errorf("%d %v %s; want 503 SERVICE_UNAVAILABLE with Retry-After", rec.Code, rec.Header(), rec.Body)
	}
}

// stalledStore is a store whose claim answers only when the request's context ends,
// as one waiting for a connection of a busy pool does.
type stalledStore struct{ Store }

func (stalledStore) ClaimIdempotencyKey(ctx context.Context, _ int64, _ string, _ []byte, _ time.Duration, _ int64) (store.IdempotencyClaim, error) {
	<-ctx.Done()
	return store.IdempotencyClaim{}, fmt.Errorf("claim: %w", ctx.Err())
}

// TestDeadlineBeforeClaimIsRetryLater: a request whose deadline passes while it
// claims its key runs nothing, and is answered 503 TIMEOUT with Retry-After, as the
// server's other 503s are (it had none: a client that waits for Retry-After on a 503
// retried at once).
func TestDeadlineBeforeClaimIsRetryLater(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := Middleware(stalledStore{}, log, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler ran")
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withWorkspace(withKey(post(`{}`).WithContext(ctx), "k"), crm.Workspace{ID: 1}))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"code":"TIMEOUT"`) ||
		rec.Header().Get("Retry-After") == "" {
		t.Errorf("%d %v %s; want 503 TIMEOUT with Retry-After", rec.Code, rec.Header(), rec.Body)
	}
}

// finishingStore is a store whose claims succeed and that records whether the
// statement that stores the answer could still run (its context alive).
type finishingStore struct {
	flakyStore
	finished, expired bool
}

func (f *finishingStore) FinishIdempotencyKey(ctx context.Context, _ int64, _ string, _ []byte, _ store.StoredResponse, _ store.AnswerBudget) (bool, error) {
	f.finished, f.expired = true, ctx.Err() != nil
	return true, ctx.Err()
}

// TestSlowRequestStoresItsAnswer: the time to store a request's answer counts from
// the end of the request. It counted from its start: a mutation that took 5 s (it
// waited for locks) was applied, its answer not stored, and a retry with the same key
// ran it again (TAKEN, stored in place of the segment it had created).
func TestSlowRequestStoresItsAnswer(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &finishingStore{}
	h := Middleware(s, log, Options{StoreTimeout: 50 * time.Millisecond})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // longer than StoreTimeout
		w.Write([]byte(`{"data":{"createSegment":{"segment":{"id":"S_AQ"}}}}`))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withWorkspace(withKey(post(`{}`), "k"), crm.Workspace{ID: 1}))
	if rec.Code != http.StatusOK {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	if !s.finished || s.expired || s.released != 0 {
		t.Errorf("stored %v with its context expired %v, released %d times; want stored in time, not released", s.finished, s.expired, s.released)
	}
}

// standbyStore is a store that took writes until its first claim, which found the key
// in progress; its database then turned read-only (a failover), and the key's holder
// is gone: the key is free, and no claim can be written.
type standbyStore struct {
	Store
	claims, finished int
}

func (s *standbyStore) ClaimIdempotencyKey(context.Context, int64, string, []byte, time.Duration, int64) (store.IdempotencyClaim, error) {
	if s.claims++; s.claims == 1 {
		return store.IdempotencyClaim{State: store.IdempotencyInProgress}, nil
	}
	return store.IdempotencyClaim{}, &pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}
}

func (s *standbyStore) IdempotencyKey(context.Context, int64, string, []byte) (store.IdempotencyClaim, error) {
	return store.IdempotencyClaim{State: store.IdempotencyFree}, nil
}

func (s *standbyStore) FinishIdempotencyKey(context.Context, int64, string, []byte, store.StoredResponse, store.AnswerBudget) (bool, error) {
	s.finished++
	return true, nil
}

func (s *standbyStore) ReleaseIdempotencyKey(context.Context, int64, string, []byte) error {
	s.finished++
	return nil
}

// TestReadOnlyRunsUnrecorded: a request whose key is free but cannot be claimed, the
// database taking no writes, runs with Unrecorded set, its answer written as it is
// and nothing stored or released; one that waited for the key's holder takes its
// place back once (Resume), though it looked the key up twice. It was refused with
// 503 SERVICE_UNAVAILABLE, queries too.
func TestReadOnlyRunsUnrecorded(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &standbyStore{}
	resumed := 0
	h := Middleware(s, log, Options{PollMin: time.Millisecond, Resume: func(http.ResponseWriter, context.Context) bool {
		resumed++
		return true
	}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Unrecorded(r.Context()) {
			t.Error("the handler ran without Unrecorded")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"a":1}}`))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, withWorkspace(withKey(post(`{"query":"{a}"}`), "k"), crm.Workspace{ID: 1}))
	if rec.Code != http.StatusOK || rec.Body.String() != `{"data":{"a":1}}` || rec.Header().Get(HeaderReplayed) != "" {
		t.Errorf("answer %d %v %s, want the handler's", rec.Code, rec.Header(), rec.Body)
	}
	if s.finished != 0 || resumed != 1 {
		t.Errorf("stored or released %d times, resumed %d; want 0 and 1", s.finished, resumed)
	}
	if Unrecorded(context.Background()) {
		t.Error("Unrecorded without the middleware")
	}
}

// overBudgetStore is a store whose claims succeed and whose workspaces are all at
// their budget: every answer is stored as the budget's, which it records.
type overBudgetStore struct {
	flakyStore
	budgets []store.AnswerBudget
}

func (s *overBudgetStore) FinishIdempotencyKey(_ context.Context, _ int64, _ string, _ []byte, _ store.StoredResponse, budget store.AnswerBudget) (bool, error) {
	s.budgets = append(s.budgets, budget)
	return budget.Bytes <= 0, nil
}

// TestOverBudgetWarnsOncePerWorkspace: the store is given the budget and the 410
// IDEMPOTENCY_ANSWER_NOT_KEPT to keep instead of an answer over it; a workspace
// whose answers go over is warned of once per BudgetWarnEvery, not once per request,
// each workspace on its own; without a budget (negative), the store bounds nothing.
func TestOverBudgetWarnsOncePerWorkspace(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	answer := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"data":{"upsertContacts":{}}}`)) }
	s := &overBudgetStore{}
	h := Middleware(s, log, Options{AnswerBudget: 1000, BudgetWarnEvery: 300 * time.Millisecond})(http.HandlerFunc(answer))
	send := func(h http.Handler, ws int64) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, withWorkspace(withKey(post(`{}`), "k"), crm.Workspace{ID: ws}))
		if rec.Code != 200 || rec.Body.String() != `{"data":{"upsertContacts":{}}}` {
			t.Fatalf("the first answer: %d %s", rec.Code, rec.Body)
		}
	}
	warnings := func() int {
		return strings.Count(logged.String(), "level=WARN msg=\"idempotency: a workspace's kept answers reached their budget")
	}
	for _, ws := range []int64{1, 1, 2, 1, 2} {
		send(h, ws)
	}
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings for 5 answers over budget in 2 workspaces, want 2:\n%s", n, logged.String())
	}
	time.Sleep(300 * time.Millisecond)
	send(h, 1)
	if n := warnings(); n != 3 {
		t.Errorf("%d warnings once BudgetWarnEvery passed, want 3:\n%s", n, logged.String())
	}
	if !strings.Contains(logged.String(), "workspace_id=1 budget=1000") {
		t.Errorf("the warning does not name the workspace and its budget:\n%s", logged.String())
	}
	b := s.budgets[0]
	if b.Bytes != 1000 || b.Status != http.StatusGone || !strings.Contains(string(b.Body), `"code":"`+CodeAnswerNotKept+`"`) ||
		!strings.Contains(string(b.Body), "budget of 1000 bytes") || b.ContentType == "" {
		t.Errorf("the budget given to the store: %d, %d %s %s", b.Bytes, b.Status, b.ContentType, b.Body)
	}

	s.budgets = nil
	send(Middleware(s, log, Options{})(http.HandlerFunc(answer)), 3)
	send(Middleware(s, log, Options{AnswerBudget: -1})(http.HandlerFunc(answer)), 3)
	if s.budgets[0].Bytes != DefaultAnswerBudget || s.budgets[1].Bytes != 0 {
		t.Errorf("budgets by default and without one: %d and %d, want %d and 0", s.budgets[0].Bytes, s.budgets[1].Bytes, DefaultAnswerBudget)
	}
}

// exhaustedStore is a store whose workspaces' kept keys are all at their limit: every
// new key is refused, and it records the limits it was given.
type exhaustedStore struct {
	flakyStore
	limits []int64
}

func (s *exhaustedStore) ClaimIdempotencyKey(_ context.Context, _ int64, _ string, _ []byte, _ time.Duration, limit int64) (store.IdempotencyClaim, error) {
	s.limits = append(s.limits, limit)
	if limit <= 0 {
		return store.IdempotencyClaim{State: store.IdempotencyClaimed, Owner: []byte("o")}, nil
	}
	return store.IdempotencyClaim{State: store.IdempotencyOverBudget}, nil
}

// TestExhaustedKeysRunUnrecorded: a new key of a workspace whose kept keys reached
// KeyBudgetFactor times the budget is not claimed: its request runs Unrecorded, so
// that a query is answered, and the handler is told to refuse a mutation with 429
// IDEMPOTENCY_BUDGET_EXHAUSTED and Retry-After (the sweep's period); nothing is
// stored or released. The refusal's WARN is logged once per BudgetWarnEvery per
// workspace; without a budget, the store is given no limit.
func TestExhaustedKeysRunUnrecorded(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	// answer refuses as the graph refuses a mutation run unrecorded.
	answer := func(w http.ResponseWriter, r *http.Request) {
		if u := UnrecordedRefusal(r.Context()); u != nil {
			u.Log(r.Context())
			w.Header().Set("Retry-After", u.RetryAfter)
			auth.WriteError(w, u.Status, u.Code, u.Message)
			return
		}
		w.Write([]byte(`{"data":{"upsertContacts":{}}}`))
	}
	s := &exhaustedStore{}
	h := Middleware(s, log, Options{AnswerBudget: 1000, BudgetWarnEvery: 300 * time.Millisecond})(http.HandlerFunc(answer))
	send := func(h http.Handler, ws int64) *httptest.ResponseRecorder {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, withWorkspace(withKey(post(`{}`), "k"), crm.Workspace{ID: ws}))
		return rec
	}
	warnings := func() int {
		return strings.Count(logged.String(), "level=WARN msg=\"idempotency: a workspace's kept keys reached twice their budget")
	}
	for _, ws := range []int64{1, 1, 2, 1, 2} {
		rec := send(h, ws)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" ||
			!strings.Contains(rec.Body.String(), `"code":"`+CodeBudgetExhausted+`"`) || !strings.Contains(rec.Body.String(), "budget of 1000 bytes") {
			t.Fatalf("a new key over the limit: %d, Retry-After %q, %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	if s.released != 0 {
		t.Errorf("%d keys released, none claimed", s.released)
	}
	if s.limits[0] != 2000 {
		t.Errorf("the store was given the limit %d, want 2000 (twice the budget)", s.limits[0])
	}
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings for 5 refusals in 2 workspaces, want 2:\n%s", n, logged.String())
	}
	time.Sleep(300 * time.Millisecond)
	send(h, 1)
	if n := warnings(); n != 3 {
		t.Errorf("%d warnings once BudgetWarnEvery passed, want 3:\n%s", n, logged.String())
	}
	if !strings.Contains(logged.String(), "workspace_id=1 budget=1000") {
		t.Errorf("the warning does not name the workspace and its budget:\n%s", logged.String())
	}

	s.limits = nil
	send(Middleware(s, log, Options{})(http.HandlerFunc(answer)), 3)
	if rec := send(Middleware(s, log, Options{AnswerBudget: -1})(http.HandlerFunc(answer)), 3); rec.Code != http.StatusOK {
		t.Errorf("without a budget: %d %s", rec.Code, rec.Body)
	}
	if s.limits[0] != 2*DefaultAnswerBudget || s.limits[1] != 0 {
		t.Errorf("limits by default and without a budget: %d and %d, want %d and 0", s.limits[0], s.limits[1], 2*DefaultAnswerBudget)
	}
}
