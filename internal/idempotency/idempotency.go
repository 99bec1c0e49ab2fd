// Package idempotency makes API requests safe to retry: a client that sends a POST
// with an "Idempotency-Key" header may send it again, as often and as concurrently as
// it likes: it runs until it gets a definitive answer, once, and every copy gets that
// answer (or, while it still runs, 409 IDEMPOTENCY_KEY_IN_PROGRESS: retry later).
//
// The rules, per workspace (keys of different workspaces never meet):
//
//   - Without the header, or on any method but POST, nothing changes.
//   - A key is 1 to 255 visible ASCII characters (0x21-0x7E), sent once; anything
//     else is refused with 400 and extensions.code INVALID_IDEMPOTENCY_KEY, and
//     nothing runs. A UUID is a good key.
//   - The first request with a key claims it and runs. Its response is stored when it
//     made a change (one of its transactions committed: run again, it would make it
//     twice), whatever it says, and else when it is a definitive answer: HTTP 200
//     without a top-level error whose code is
//     TIMEOUT, INTERNAL_SERVER_ERROR, UNAVAILABLE or SERVICE_UNAVAILABLE (transient
//     failures), CLIENT_CLOSED_REQUEST (its client left), FORBIDDEN (the credential
//     may not run it: another credential of the workspace may, with the same key) or
//     PERSISTED_QUERY_NOT_FOUND (the client resends it with the full query), and
//     that ran (it has "data", null too). A mutation refused with userErrors is
//     definitive, and stored too. A request refused before it ran (a
//     parse or validation error, a limit: no "data") is not stored and its claim is
//     released, as Stripe does: a retry is refused alike, having run nothing, and a
//     record would only keep the refusal's bytes (up to hundreds of KB each, for
//     free) and bind the key to a body that did nothing, so the same key may carry
//     the corrected request.
//     A read principal's requests keep no key: they run as without one.
//   - A query keeps nothing either (the handler tells, Query): its claim is released
//     once it answered, and a retry with the key runs it again, as without one, as
//     Stripe, Shopify and GitHub de-duplicate only writes. Kept, a query's answer
//     was a copy of the workspace's data for a day, a deleted contact's included,
//     and queries of 9 aliased pages of 100 contacts (13 MB each) sent with fresh
//     keys grew the table by 454 MB in 45 s (nothing now).
//   - A stored answer is at most MaxStoredAnswer bytes. A larger one is stored as
//     410 CodeAnswerNotKept instead, which its replays get: the request ran, and does
//     not run again; its client reads the current state.
//   - The answers a workspace's keys keep, with the keys' rows
//     (store.IdempotencyRowBytes: about 640 bytes a key), add up to
//     Options.AnswerBudget bytes at most (64 MiB): one that would take them over is
//     stored as 410 CodeAnswerNotKept too, and the middleware warns, once a minute per
//     workspace. Its key is kept all the same, until the workspace's keys count twice
//     the budget: then a new key is not claimed, and its request runs unrecorded
//     (Unrecorded), as on a read-only database below: a query is answered, a mutation
//     refused before it runs, 429 CodeBudgetExhausted with Retry-After (warned of
//     alike), while the keys already kept are still answered. Keys give their bytes
//     back as they expire.
//   - A later request with the key and a byte-identical body gets the stored response,
//     same status and byte-identical body, with "Idempotent-Replayed: true", and runs
//     nothing. A request that arrives while the first still runs waits for its answer
//     (polling the store, 10 ms growing to 100 ms, for as long as its own deadline
//     lets it; when that ends first: 409 IDEMPOTENCY_KEY_IN_PROGRESS, retry later).
//     At most Options.MaxWaitingPerKey (8) wait so in a process; the next get that
//     409 at once.
//   - A replay is charged (Options.Charge) what the request it repeats was charged,
//     at least 1 point, before it is written: refused (the server answers 429
//     THROTTLED), it replays nothing and the key stays stored for a later retry.
//   - The same key with a different body is refused with 422 and
//     IDEMPOTENCY_KEY_REUSED, and nothing runs. When the keys cannot be read (the
//     database is down), the answer is 503 SERVICE_UNAVAILABLE and nothing runs either;
//     when the request's deadline passes before its key is claimed, 503 TIMEOUT. Both
//     carry Retry-After.
//   - When the database takes no writes (a standby after a failover, maintenance), a
//     stored answer is still replayed; a key in progress gets 503 SERVICE_UNAVAILABLE
//     with Retry-After (its holder cannot store an answer either); a free key's request
//     runs unrecorded (Unrecorded): nothing is stored, the same key runs again later.
//     The handler refuses it any change (the graph refuses a mutation with the same
//     503, before it runs); a query is answered. This middleware cannot tell them
//     apart: it does not parse GraphQL, and a persisted query may be only a hash.
//   - When the first request's answer is not stored (a transient failure, say), its
//     claim is released and the next request with the key runs again. The mutations of
//     this API converge (assigning, removing, upserting or deleting again leaves the
//     same state), so a retry after a failure reaches the requested state.
//   - A claim is a lease (Options.Lease, 1 minute): if the process running the first
//     request dies, a retry after the lease takes the key over and runs. The lease
//     must outlast the request deadline, so that a live request is never taken over.
//   - Keys are kept at least 24 hours (Options.Retention), then forgotten: the same key
//     then runs again. Expired keys are deleted by the requests themselves: at most
//     once a minute, the request that claimed a key deletes up to 1,000 expired ones
//     after it answered, and the next request goes on at once while a batch comes back
//     full. No background goroutine, nothing to start or stop.
//
// The claim, the stored response and the release are single statements of their own,
// outside the transaction of the request, so a request waiting for another holds no
// lock and no connection. The price is a narrow window: a request that committed its
// changes and died (or lost the database) before storing its response runs again when
// retried after its lease; that retry converges to the same state, but its answer
// describes the second run (createSegment, for one, answers TAKEN).
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/requestid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// Header names.
const (
	HeaderKey      = "Idempotency-Key"
	HeaderReplayed = "Idempotent-Replayed"
)

// Codes (extensions.code) of the refusals of this package.
const (
	CodeInvalidKey = "INVALID_IDEMPOTENCY_KEY"
	CodeKeyReused  = "IDEMPOTENCY_KEY_REUSED"
	CodeInProgress = "IDEMPOTENCY_KEY_IN_PROGRESS"
	CodeTooLarge   = "REQUEST_TOO_LARGE"
	// CodeAnswerNotKept is the code of the answer replayed for a key whose request
	// ran but whose answer was larger than MaxStoredAnswer, or would have taken its
	// workspace's kept answers over Options.AnswerBudget.
	CodeAnswerNotKept = "IDEMPOTENCY_ANSWER_NOT_KEPT"
	// CodeBudgetExhausted refuses a mutation with a new key, before it runs, of a
	// workspace whose kept keys count KeyBudgetFactor times Options.AnswerBudget.
	CodeBudgetExhausted = "IDEMPOTENCY_BUDGET_EXHAUSTED"
)

// MaxStoredAnswer is the size limit, in bytes, of an answer stored for replay. A
// mutation's answer is usually small (an upsert of 100 contacts read back whole: 27
// KB; of 1,000: under 300 KB), but its payload may read connections under aliases as
// a query does, and each stored answer is kept a day in the database that every
// workspace shares: a larger answer reaches its first request alone. It bounds a
// row, not the rate: upserts answering just under it (1 MB, 12 points each), sent
// with fresh keys, still stored 465 MB in 45 s; Options.AnswerBudget bounds a
// workspace's total.
const MaxStoredAnswer = 1 << 20

// DefaultAnswerBudget is Options.AnswerBudget's default: 64 MiB of answers kept at
// once per workspace. Upserts of 1,000 contacts every 3 seconds for a day, each
// answering its counts and userErrors (239 bytes, extensions.cost included), keep
// 6.9 MB; answering each contact's id too (16.2 KB), they reach 64 MiB in 3.4
// hours, after which a retry of one gets 410 (an upsert converges: it may be sent
// again with a new key). An abuser's workspace keeps 64 MiB at most: on disk, from
// 2 MB (repetitive JSON, which PostgreSQL compresses) to 70 MB (random
// attributes), where upserts answering 1 MB with fresh keys kept 828 MB in 45 s
// without a budget.
const DefaultAnswerBudget = 64 << 20

// KeyBudgetFactor is how many times Options.AnswerBudget a workspace's kept keys may
// count, their rows and answers together (store.IdempotencyRowBytes), before its new
// keys are no longer kept (their mutations refused, CodeBudgetExhausted): the budget for answers kept whole, and as
// much again for keys kept without them (410 CodeAnswerNotKept). Kept without their
// answers, keys still count about 640 bytes each, for a day: a client sending fresh
// keys as fast as its rate limit allows kept 1.3 GB a day of them, bounded by no
// budget. Refused at the budget itself, a busy integration whose answers read much
// back (3.4 hours to 64 MiB) could not run its keyed mutations for the rest of the
// day; with as much again, 64 MiB holds 100,000 keys kept without answers, more than
// a day of a mutation every second, while a client sending fresh keys flat out is
// refused after about an hour.
const KeyBudgetFactor = 2

// MaxKeyLength is the length limit of a key, in bytes.
const MaxKeyLength = 255

// unstoredCodes are the top-level error codes of answers that are not stored, so
// that the next request with the key runs again: transient failures (graph/errors.go,
// auth), refusals of the credential rather than of the request (graph/authorize.go),
// and gqlgen's automatic persisted queries, whose clients resend the same key with
// the full query.
var unstoredCodes = map[string]bool{
	"TIMEOUT":                   true,
	"INTERNAL_SERVER_ERROR":     true,
	"UNAVAILABLE":               true,
	"SERVICE_UNAVAILABLE":       true,
	"CLIENT_CLOSED_REQUEST":     true, // no one heard it: the client's retry runs
	"FORBIDDEN":                 true,
	"PERSISTED_QUERY_NOT_FOUND": true,
}

// Store keeps the keys; *store.Store is one.
type Store interface {
	ClaimIdempotencyKey(ctx context.Context, ws int64, key string, hash []byte, lease time.Duration, limit int64) (store.IdempotencyClaim, error)
	IdempotencyKey(ctx context.Context, ws int64, key string, hash []byte) (store.IdempotencyClaim, error)
	IdempotencyResponseBody(ctx context.Context, ws int64, key string, hash []byte) ([]byte, bool, error)
	FinishIdempotencyKey(ctx context.Context, ws int64, key string, owner []byte, res store.StoredResponse, budget store.AnswerBudget) (bool, error)
	ReleaseIdempotencyKey(ctx context.Context, ws int64, key string, owner []byte) error
	DeleteExpiredIdempotencyKeys(ctx context.Context, olderThan time.Duration, limit int) (int, error)
}

// Options tune the middleware; zero values mean the defaults.
type Options struct {
	// Lease is how long a claim holds before a retry may take the key over: longer
	// than any request runs (the request deadline). Default 1 minute.
	Lease time.Duration
	// Retention is how long keys are kept at least. Default 24 hours, which is also
	// the least the database's sweep keeps them (migration 20261214000001): a
	// shorter one keeps them 24 hours all the same.
	Retention time.Duration
	// CleanupEvery is how often at most expired keys are deleted. Default 1 minute.
	CleanupEvery time.Duration
	// CleanupBatch is how many expired keys one cleanup deletes at most. Default 1,000.
	CleanupBatch int
	// MaxBodyBytes bounds the body of a request with a key (it is read whole to be
	// hashed). Default 8 MiB.
	MaxBodyBytes int64
	// PollMin and PollMax bound the pause between two looks at a key another request
	// holds; it doubles from PollMin to PollMax. Defaults 10 ms and 100 ms.
	PollMin, PollMax time.Duration
	// MaxWaitingPerKey is how many requests at most wait for the answer of the one
	// holding their key, in this process; a request beyond is answered 409
	// IDEMPOTENCY_KEY_IN_PROGRESS at once, with Retry-After. Default 8, as many as
	// one caller's requests may wait for its turn: a client's retries of a request
	// still running, not a crowd polling the store. Negative: no bound.
	MaxWaitingPerKey int
	// Pause, when set, is called as a request starts waiting for the answer of the
	// one holding its key, and Resume before a request that waited runs after all (the
	// key came free): Resume answers the request itself and returns false when it
	// may not run. The server gives a waiting request's place among its running
	// requests up meanwhile, as requests waiting for their turn do: held while they
	// polled, 45 copies of one slow mutation took the server's 40 places, and every
	// other workspace's requests waited 9 s behind them.
	Pause  func(ctx context.Context)
	Resume func(w http.ResponseWriter, ctx context.Context) bool
	// Charge, when set, charges a replay before it is written: cost is what the
	// request it repeats was charged (StoredResponse.Cost; 0 when not kept), which the
	// server's (graph.ChargeReplay) raises to its minimum charge, as for every request:
	// a replay is never free, it reads the key's row and sends the stored bytes.
	// It returns false when the replay may not be written, having answered the request
	// itself; the key stays stored, and a later retry is replayed. The server charges
	// replays to the rate limit as it charges requests: replayed for free, one stored
	// answer was sent 1,644 times a second to a key throttled at 3 requests a second.
	// Nil charges nothing.
	Charge func(w http.ResponseWriter, r *http.Request, cost int) bool
	// AnswerBudget bounds the bytes a workspace's keys keep at once, in the database
	// every workspace shares: their answers' bodies as sent (PostgreSQL compresses
	// them) and their rows (store.IdempotencyRowBytes). An answer that would take its
	// workspace over it is kept as 410 CodeAnswerNotKept, as one larger than
	// MaxStoredAnswer is; at KeyBudgetFactor times it, mutations with new keys are
	// refused (CodeBudgetExhausted), until keys expire and give their bytes back. Default
	// DefaultAnswerBudget; negative: no bound. Under MaxStoredAnswer each, upserts
	// answering 1 MB sent with fresh keys kept 465 MB in 45 s, for a day.
	AnswerBudget int64
	// BudgetWarnEvery is how often at most the middleware warns that a workspace's
	// keys went over AnswerBudget, and that its mutations with new keys are refused,
	// per workspace and warning. Default 1 minute.
	BudgetWarnEvery time.Duration
	// StoreTimeout bounds the statements that store or release a response, counted
	// from the end of the request: they run after the request's own context may have
	// ended (its deadline passed, its client left), since a claim left behind would
	// make retries wait for its lease. Default 5 seconds.
	StoreTimeout time.Duration
}

func (o *Options) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&o.Lease, time.Minute)
	set(&o.Retention, 24*time.Hour)
	set(&o.CleanupEvery, time.Minute)
	set(&o.PollMin, 10*time.Millisecond)
	set(&o.PollMax, 100*time.Millisecond)
	set(&o.StoreTimeout, 5*time.Second)
	set(&o.BudgetWarnEvery, time.Minute)
	if o.AnswerBudget == 0 {
		o.AnswerBudget = DefaultAnswerBudget
	}
	if o.CleanupBatch <= 0 {
		o.CleanupBatch = 1000
	}
	if o.MaxWaitingPerKey == 0 {
		o.MaxWaitingPerKey = 8
	}
	if o.Pause == nil {
		o.Pause = func(context.Context) {}
	}
	if o.Resume == nil {
		o.Resume = func(http.ResponseWriter, context.Context) bool { return true }
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.Charge == nil {
		o.Charge = func(http.ResponseWriter, *http.Request, int) bool { return true }
	}
}

type middleware struct {
	store Store
	log   *slog.Logger
	opts  Options
	next  http.Handler
	// nextCleanup is when (Unix nanoseconds) expired keys may be deleted next.
	nextCleanup atomic.Int64

	mu      sync.Mutex
	waiting map[waitingKey]int // requests waiting for each key's holder
	// warned is when each workspace was last warned of going over its budget, or of
	// its mutations with new keys being refused.
	warned map[warning]time.Time
}

// warning is one of a workspace's warnings, each given once per BudgetWarnEvery.
type warning struct {
	ws        int64
	exhausted bool // mutations with new keys refused, not answers kept without their bodies
}

type waitingKey struct {
	ws  int64
	key string
}

// Middleware makes POST requests with an Idempotency-Key header idempotent (see the
// package documentation). It must run behind auth.Require: keys belong to the
// request's workspace.
func Middleware(s Store, log *slog.Logger, opts Options) func(http.Handler) http.Handler {
	opts.defaults()
	return func(next http.Handler) http.Handler {
		return &middleware{store: s, log: log, opts: opts, next: next, waiting: map[waitingKey]int{}, warned: map[warning]time.Time{}}
	}
}

func (m *middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	values, present := r.Header[HeaderKey]
	if r.Method != http.MethodPost || !present {
		m.next.ServeHTTP(w, r)
		return
	}
	if len(values) != 1 {
		auth.WriteError(w, http.StatusBadRequest, CodeInvalidKey, "send one Idempotency-Key header, not several")
		return
	}
	key := values[0]
	if !ValidKey(key) {
		auth.WriteError(w, http.StatusBadRequest, CodeInvalidKey,
			"invalid Idempotency-Key: it must be 1 to 255 visible ASCII characters, such as a UUID")
		return
	}
	if p, ok := auth.PrincipalFrom(r.Context()); ok && !p.CanWrite() {
		// A read principal's mutation is refused (FORBIDDEN) however often it comes,
		// and its queries change nothing: its keys are neither kept nor replayed.
		// Replayed, the answer a read_write key got for the same body told a read key
		// that its mutation had succeeded.
		m.next.ServeHTTP(w, r)
		return
	}
	ws, ok := auth.WorkspaceFrom(r.Context())
	if !ok {
		m.log.ErrorContext(r.Context(), "idempotency: no workspace in the request context: the middleware must run behind auth.Require")
		auth.WriteError(w, http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "internal server error")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.opts.MaxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			auth.WriteError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
				"the request body is larger than "+strconv.FormatInt(m.opts.MaxBodyBytes, 10)+" bytes")
			return
		}
		auth.WriteError(w, http.StatusBadRequest, "BAD_REQUEST", "could not read the request body")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	hash := sum[:]

	ctx := context.WithValue(r.Context(), runKey{}, &run{})
	r = r.WithContext(ctx)
	claim, err := m.store.ClaimIdempotencyKey(ctx, ws.ID, key, hash, m.opts.Lease, m.keyLimit())
	pause := m.opts.PollMin
	waited := false   // this request waited for the key's holder
	counted := false  // and is counted among those waiting (MaxWaitingPerKey)
	resumed := false  // and took its place back (Resume) to run
	readOnly := false // the database took no writes: the key is only looked up
	stopWaiting := func() {
		if counted {
			m.stopWaiting(ws.ID, key)
			counted = false
		}
	}
	defer stopWaiting()
	// runNow readies a request to run after all: one that waited takes its place
	// back first, once, and waits no more (counted, it left one place fewer for the
	// next copy). False: it could not, and was answered.
	runNow := func() bool {
		stopWaiting()
		if waited && !resumed {
			if !m.opts.Resume(w, ctx) {
				return false
			}
			resumed = true
		}
		return true
	}
	for {
		if err != nil && store.ReadOnly(err) && !readOnly {
			// A standby after a failover, or maintenance: a key whose answer is kept
			// is still replayed, by reads alone; any other must wait for writes.
			readOnly = true
			claim, err = m.store.IdempotencyKey(ctx, ws.ID, key, hash)
			continue
		}
		if err != nil {
			switch {
			case ctx.Err() != nil && waited:
				m.inProgress(w)
				return
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				// Nothing ran: a 503, with Retry-After as the server's other 503s have,
				// so that a client waiting that long does not retry at once.
				w.Header().Set("Retry-After", "1")
				auth.WriteError(w, http.StatusServiceUnavailable, "TIMEOUT", "the request took too long and was stopped before it ran")
				return
			case ctx.Err() != nil:
				// Cancelled (its client left, or the server is shutting down): no
				// timeout, and no failure of the store's.
				w.Header().Set("Retry-After", "1")
				auth.WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the request was stopped before it ran; retry it")
				return
			}
			if store.ReadOnly(err) {
				m.refuseReadOnly(ctx, w)
				return
			}
			m.log.ErrorContext(ctx, "idempotency: store", "err", err)
			w.Header().Set("Retry-After", "1")
			auth.WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "the service is unavailable, try again shortly")
			return
		}
		switch claim.State {
		case store.IdempotencyClaimed:
			if claim.TookOver {
				m.log.WarnContext(ctx, "idempotency: took over a key whose request did not finish within its lease",
					"workspace_id", ws.ID, "key", key)
			}
			m.execute(w, r, ws.ID, key, claim.Owner)
			return
		case store.IdempotencyDone:
			rec := telemetry.From(ctx)
			if !m.opts.Charge(w, r, replayCost(claim.Response)) {
				// Refused as the request it repeats would be, and logged as that
				// operation, refused.
				if rec != nil {
					rec.SetOperation(claim.Response.OperationType, claim.Response.Operation)
				}
				return
			}
			// Read once charged: a refused replay of a stored answer of megabytes
			// made PostgreSQL read it for nothing.
			var body []byte
			var ok bool
			body, ok, err = m.store.IdempotencyResponseBody(ctx, ws.ID, key, hash)
			if err == nil && !ok {
				// Forgotten since (its retention ran out): the request runs again.
				claim, err = m.store.ClaimIdempotencyKey(ctx, ws.ID, key, hash, m.opts.Lease, m.keyLimit())
				continue
			}
			if err != nil {
				continue // answered as the claim's errors are
			}
			claim.Response.Body = body
			if rec != nil {
				rec.Replay(claim.Response.Operation, claim.Response.OperationType, claim.Response.Body)
			}
			replay(w, claim.Response)
			return
		case store.IdempotencyMismatch:
			auth.WriteError(w, http.StatusUnprocessableEntity, CodeKeyReused,
				"this Idempotency-Key was already used with a different request body; use a new key for a new request")
			return
		case store.IdempotencyOverBudget:
			// Not claimed: it runs unrecorded, as on a read-only database, so that a
			// query is answered, and the graph refuses a mutation before it runs (run
			// unguarded, its retry would run it again).
			if !runNow() {
				return
			}
			m.next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, unrecordedKey{}, m.exhausted(ws.ID))))
			return
		case store.IdempotencyFree:
			if !runNow() {
				return
			}
			if readOnly {
				// Nothing can be recorded, and a request that changes nothing needs
				// no record: it runs, unrecorded, and the graph refuses it if it is a
				// mutation (Unrecorded). Refused whole, a partner SDK's keyed queries
				// failed through a failover while unkeyed ones were served.
				m.next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, unrecordedKey{}, m.readOnlyRefusal())))
				return
			}
			claim, err = m.store.ClaimIdempotencyKey(ctx, ws.ID, key, hash, m.opts.Lease, m.keyLimit())
		default: // in progress: wait for the holder's answer
			if readOnly {
				// Its holder cannot store an answer either: the copy waits for
				// nothing.
				m.refuseReadOnly(ctx, w)
				return
			}
			if !counted {
				if !m.startWaiting(ws.ID, key) {
					m.inProgress(w)
					return
				}
				counted, waited = true, true
			}
			m.opts.Pause(ctx)
			select {
			case <-ctx.Done():
				// Answered also when cancelled: the client may still read (it
				// half-closed, or the server is shutting down), and an unanswered
				// request is an empty 200 to it.
				m.inProgress(w)
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, m.opts.PollMax)
			claim, err = m.store.IdempotencyKey(ctx, ws.ID, key, hash)
		}
	}
}

// startWaiting counts a request that waits for the holder of its key, if
// MaxWaitingPerKey allows one more; stopWaiting uncounts it.
func (m *middleware) startWaiting(ws int64, key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := waitingKey{ws, key}
	if m.opts.MaxWaitingPerKey >= 0 && m.waiting[k] >= m.opts.MaxWaitingPerKey {
		return false
	}
	m.waiting[k]++
	return true
}

func (m *middleware) stopWaiting(ws int64, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := waitingKey{ws, key}
	if m.waiting[k]--; m.waiting[k] <= 0 {
		delete(m.waiting, k)
	}
}

// ReadOnlyMessage is the message of the 503 SERVICE_UNAVAILABLE answer to a request
// whose Idempotency-Key cannot be recorded because the database takes no writes now:
// the middleware's (refuseReadOnly), and the graph's to a mutation run Unrecorded.
const ReadOnlyMessage = "the database takes no writes now, so the Idempotency-Key cannot be recorded; retry shortly"

type unrecordedKey struct{}

// run is what the handler tells the middleware of the request holding a key.
type run struct {
	query atomic.Bool // it ran a query (Query)
}

type runKey struct{}

// Query tells the middleware that the request of ctx runs a query, whose answer its
// Idempotency-Key keeps nothing of: the key is released once it answered, and the
// next request with it runs again, as without one (see the package documentation).
// The handler calls it once the operation is known, before it runs: the middleware
// does not parse GraphQL, and a persisted query may be only a hash. Nothing happens
// for a request without a key. A request that made a change all the same (one of
// its transactions committed) is stored as any other.
func Query(ctx context.Context) {
	if r, ok := ctx.Value(runKey{}).(*run); ok {
		r.query.Store(true)
	}
}

// Unrecorded reports whether ctx belongs to a request whose Idempotency-Key is free
// but was not claimed: the database takes no writes, or the workspace's kept keys
// reached KeyBudgetFactor times Options.AnswerBudget. It runs as long as it changes
// nothing, and its answer is not stored. The handler must refuse such a request
// anything that would change something (a mutation) before it runs, as
// UnrecordedRefusal says: made unrecorded, a change would be made again by the key's
// retry.
func Unrecorded(ctx context.Context) bool {
	return UnrecordedRefusal(ctx) != nil
}

// Refusal is how the handler refuses a mutation of a request that runs Unrecorded:
// its HTTP status, Retry-After, extensions.code and message, and the line it logs.
type Refusal struct {
	Status     int
	RetryAfter string
	Code       string
	Message    string
	log        func(context.Context)
}

// Log logs the refusal, as the middleware's refusals are logged: a WARN line (at most
// once a minute per workspace for a workspace over its budget).
func (r *Refusal) Log(ctx context.Context) { r.log(ctx) }

// UnrecordedRefusal is how to refuse a mutation of the request of ctx, which runs
// Unrecorded: on a read-only database, 503 SERVICE_UNAVAILABLE, ReadOnlyMessage,
// Retry-After and LogReadOnly's line, as the middleware refuses a key it cannot claim;
// for a workspace over its budget, 429 CodeBudgetExhausted with Retry-After. Nil when
// the request's key is recorded, or it has none.
func UnrecordedRefusal(ctx context.Context) *Refusal {
	r, _ := ctx.Value(unrecordedKey{}).(*Refusal)
	return r
}

// readOnlyRefusal is the Refusal of a request run unrecorded on a read-only database.
func (m *middleware) readOnlyRefusal() *Refusal {
	return &Refusal{Status: http.StatusServiceUnavailable, RetryAfter: "1", Code: "SERVICE_UNAVAILABLE", Message: ReadOnlyMessage,
		log: func(ctx context.Context) { LogReadOnly(ctx, m.log) }}
}

// LogReadOnly logs, as a warning, that the Idempotency-Key of the request of ctx
// cannot be recorded because the database takes no writes now: the log line of
// refuseReadOnly, for the handler that refuses a request that is Unrecorded.
func LogReadOnly(ctx context.Context, log *slog.Logger) {
	log.WarnContext(ctx, "database is read-only", "during", "Idempotency-Key claim", "request_id", requestid.From(ctx))
}

// refuseReadOnly answers a request whose key cannot be claimed because the database takes
// no writes now: it is unavailable, not failed (nothing ran, and the same request
// succeeds once the database takes writes), and logged as the server's other writes
// to a read-only database are.
func (m *middleware) refuseReadOnly(ctx context.Context, w http.ResponseWriter) {
	LogReadOnly(ctx, m.log)
	w.Header().Set("Retry-After", "1")
	auth.WriteError(w, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", ReadOnlyMessage)
}

func (m *middleware) inProgress(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	auth.WriteError(w, http.StatusConflict, CodeInProgress,
		"a request with this Idempotency-Key is still in progress; retry it later")
}

// execute runs the request that holds the key, stores its response when it is
// definitive and releases the key otherwise, then answers.
func (m *middleware) execute(w http.ResponseWriter, r *http.Request, ws int64, key string, owner []byte) {
	// The inner layers see the headers the outer ones set (CORS's Vary: Origin), as
	// without a key: they add to them, and the first answer lost them when copied.
	rec := &recorder{header: w.Header().Clone()}
	var made atomic.Bool // a change of the request committed
	r = r.WithContext(store.OnCommit(r.Context(), func() { made.Store(true) }))
	func() {
		defer func() {
			if p := recover(); p != nil {
				ctx, cancel := m.storeContext(r)
				defer cancel()
				m.release(ctx, ws, key, owner)
				panic(p)
			}
		}()
		m.next.ServeHTTP(rec, r)
	}()
	// Its time starts now: a request that took StoreTimeout or more (a mutation that
	// waited for locks, one that timed out) could neither store its answer nor release
	// its key, so that a retry ran the mutation again, or waited for the lease.
	ctx, cancel := m.storeContext(r)
	defer cancel()
	res := store.StoredResponse{Status: rec.statusCode(), ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()}
	if t := telemetry.From(ctx); t != nil {
		charged := t.Charged
		res.Operation, res.OperationType, res.Cost = t.Operation, t.OperationType, &charged
	}
	// A request that made a change is answered alike when retried, whatever its
	// answer: run again, it would make the change twice (a createSegment answered
	// TAKEN by its own retry). One of two mutations that committed, the other timing
	// out, was run again. A query keeps nothing (Query).
	query := false
	if rn, ok := r.Context().Value(runKey{}).(*run); ok {
		query = rn.query.Load()
	}
	if made.Load() || !query && definitive(res) {
		stored := kept(res)
		whole, err := m.store.FinishIdempotencyKey(ctx, ws, key, owner, stored, m.budget(stored))
		switch {
		case err != nil:
			// The request applied; a retry after the release runs it again, which
			// converges.
			m.log.ErrorContext(ctx, "idempotency: store the response", "err", err, "workspace_id", ws, "key", key)
			m.release(ctx, ws, key, owner)
		case !whole:
			m.overBudget(ctx, ws, len(res.Body))
		}
	} else {
		m.release(ctx, ws, key, owner)
	}

	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.Status)
	w.Write(res.Body)

	m.cleanup(ctx, w)
}

// storeContext is the context of the statements that store or release the key of
// r, which must run even when r's own context has ended.
func (m *middleware) storeContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), m.opts.StoreTimeout)
}

func (m *middleware) release(ctx context.Context, ws int64, key string, owner []byte) {
	err := m.store.ReleaseIdempotencyKey(ctx, ws, key, owner)
	if err != nil && !errors.Is(err, store.ErrIdempotencyClaimLost) {
		// The claim stays until its lease runs out; retries wait until then.
		m.log.ErrorContext(ctx, "idempotency: release a key", "err", err, "workspace_id", ws, "key", key)
	}
}

// cleanup deletes expired keys when it is time to, after the response went out. One
// request per CleanupEvery wins the compare-and-swap; while a batch comes back full,
// the next request deletes the next batch.
func (m *middleware) cleanup(ctx context.Context, w http.ResponseWriter) {
	now := time.Now().UnixNano()
	next := m.nextCleanup.Load()
	if now < next || !m.nextCleanup.CompareAndSwap(next, now+int64(m.opts.CleanupEvery)) {
		return
	}
	_ = http.NewResponseController(w).Flush()
	n, err := m.store.DeleteExpiredIdempotencyKeys(ctx, m.opts.Retention, m.opts.CleanupBatch)
	if err != nil {
		m.log.WarnContext(ctx, "idempotency: delete expired keys", "err", err)
		return
	}
	if n >= m.opts.CleanupBatch {
		m.nextCleanup.Store(0)
	}
}

// kept is what is stored of res for replay: res itself, or when its body is larger
// than MaxStoredAnswer, the refusal CodeAnswerNotKept in its place, charged and
// logged as res.
func kept(res store.StoredResponse) store.StoredResponse {
	if len(res.Body) <= MaxStoredAnswer {
		return res
	}
	return notKept(res, fmt.Sprintf("was larger than the %d kept for replay", MaxStoredAnswer))
}

// notKept is res with the refusal CodeAnswerNotKept in its place: why says why its
// answer was not kept.
func notKept(res store.StoredResponse, why string) store.StoredResponse {
	rec := &recorder{header: http.Header{}}
	auth.WriteError(rec, http.StatusGone, CodeAnswerNotKept, fmt.Sprintf(
		"the request with this Idempotency-Key ran and does not run again, but its answer (%d bytes) %s: read the current state instead",
		len(res.Body), why))
	res.Status, res.ContentType, res.Body = rec.statusCode(), rec.header.Get("Content-Type"), rec.body.Bytes()
	return res
}

// budget is the budget res is stored within: AnswerBudget, and the refusal
// CodeAnswerNotKept kept instead of res when its workspace's answers would go over.
func (m *middleware) budget(res store.StoredResponse) store.AnswerBudget {
	if m.opts.AnswerBudget < 0 {
		return store.AnswerBudget{}
	}
	instead := notKept(res, fmt.Sprintf(
		"would have taken the answers kept for this workspace over their budget of %d bytes", m.opts.AnswerBudget))
	return store.AnswerBudget{Bytes: m.opts.AnswerBudget, Status: instead.Status, ContentType: instead.ContentType, Body: instead.Body}
}

// keyLimit is the count of a workspace's kept keys at which its new keys are no longer
// claimed (ClaimIdempotencyKey's limit): KeyBudgetFactor times AnswerBudget, and none
// without a budget.
func (m *middleware) keyLimit() int64 {
	if m.opts.AnswerBudget < 0 {
		return 0
	}
	return KeyBudgetFactor * m.opts.AnswerBudget
}

// exhausted is the Refusal of a mutation with a new key of workspace ws, whose kept
// keys reached keyLimit: refused before it runs, since run unguarded, its retries
// would run it again. Room comes back as the workspace's keys expire, which the sweep
// (cleanup) finds at most once per CleanupEvery: the retry after that may find it.
func (m *middleware) exhausted(ws int64) *Refusal {
	return &Refusal{
		Status:     http.StatusTooManyRequests,
		RetryAfter: strconv.Itoa(max(1, int(m.opts.CleanupEvery/time.Second))),
		Code:       CodeBudgetExhausted,
		Message: fmt.Sprintf("this workspace's Idempotency-Keys and their kept answers reached twice their budget of %d bytes: "+
			"a mutation with a new key is refused, and did not run, until older keys expire (24 hours after they were sent); retry after Retry-After. "+
			"Retries with keys already kept are answered, and requests without a key run", m.opts.AnswerBudget),
		log: func(ctx context.Context) {
			if m.warnOnce(warning{ws: ws, exhausted: true}) {
				m.log.WarnContext(ctx, "idempotency: a workspace's kept keys reached twice their budget; its mutations with new keys are refused (429 "+CodeBudgetExhausted+") until older keys expire",
					"workspace_id", ws, "budget", m.opts.AnswerBudget)
			}
		},
	}
}

// overBudget warns that workspace ws's keys reached AnswerBudget, the answer of size
// bytes being kept without its body.
func (m *middleware) overBudget(ctx context.Context, ws int64, size int) {
	if m.warnOnce(warning{ws: ws}) {
		m.log.WarnContext(ctx, "idempotency: a workspace's kept answers reached their budget; its new answers are kept without their bodies (410 "+CodeAnswerNotKept+" to retries) until older keys expire",
			"workspace_id", ws, "budget", m.opts.AnswerBudget, "answer_bytes", size)
	}
}

// warnOnce reports whether warning k is due: once per BudgetWarnEvery, since a
// workspace at its budget goes over with each of its mutations.
func (m *middleware) warnOnce(k warning) bool {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	last, seen := m.warned[k]
	if seen && now.Sub(last) < m.opts.BudgetWarnEvery {
		return false
	}
	if len(m.warned) >= 1024 {
		// Forget the warnings given long enough ago to be given again.
		for w, t := range m.warned {
			if now.Sub(t) >= m.opts.BudgetWarnEvery {
				delete(m.warned, w)
			}
		}
	}
	m.warned[k] = now
	return true
}

// replayCost is what the request res answers was charged, for Options.Charge. An
// answer stored before costs were kept (nil) counts 0, which Charge raises to its
// minimum, rather than a cost read from its body, which may not say (a refusal before
// costing) and is not the server's record of the charge.
func replayCost(res store.StoredResponse) int {
	if res.Cost == nil {
		return 0
	}
	return *res.Cost
}

func replay(w http.ResponseWriter, res store.StoredResponse) {
	if res.ContentType != "" {
		w.Header().Set("Content-Type", res.ContentType)
	}
	w.Header().Set(HeaderReplayed, "true")
	w.WriteHeader(res.Status)
	w.Write(res.Body)
}

// definitive reports whether a response is the request's final answer, to be replayed
// to retries: HTTP 200 of a request that ran (its answer has "data", null too) without
// a top-level error that a retry could cure (unstoredCodes). An answer without "data"
// is a refusal before anything ran (parsing, validation, limits), which a retry meets
// again at no more cost than a replay: stored, 100 such answers of 726 KB with fresh
// keys grew the table by 28 MB in 3.7 s.
func definitive(res store.StoredResponse) bool {
	if res.Status != http.StatusOK {
		return false
	}
	var doc struct {
		Data   json.RawMessage `json:"data"` // "null" when it is null: nil only when absent
		Errors []struct {
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(res.Body, &doc); err != nil || doc.Data == nil {
		return false
	}
	for _, e := range doc.Errors {
		if code, _ := e.Extensions["code"].(string); unstoredCodes[code] {
			return false
		}
	}
	return true
}

// ValidKey reports whether s is a valid idempotency key: 1 to 255 visible ASCII
// characters.
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// recorder holds a response until it is known whether to store it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
