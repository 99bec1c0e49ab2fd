package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Idempotency keys: the store's half of package idempotency. A key is claimed by the
// one request that executes it, then either finished (its response stored for
// replay) or released (deleted, so that a retry executes again). Each method is one
// statement outside any transaction of the request it guards, so a claim holds no
// lock and no connection while the request runs; a lease stands in for the lock.

// IdempotencyState is what a request finds under its idempotency key.
type IdempotencyState int

const (
	// IdempotencyClaimed: the caller now holds the key and must execute its request,
	// then FinishIdempotencyKey or ReleaseIdempotencyKey with the claim's Owner.
	IdempotencyClaimed IdempotencyState = iota + 1
	// IdempotencyFree: nobody holds the key (it is unknown, was released, or its
	// holder's lease ran out): ClaimIdempotencyKey it. Only IdempotencyKey says so.
	IdempotencyFree
	// IdempotencyInProgress: another request with the same body holds the key and its
	// lease still runs: wait for its response.
	IdempotencyInProgress
	// IdempotencyDone: the key's response is stored: replay it.
	IdempotencyDone
	// IdempotencyMismatch: the key belongs to a request with another body.
	IdempotencyMismatch
	// IdempotencyOverBudget: the key is unknown, and its workspace's kept keys count
	// the claim's limit or more (ClaimIdempotencyKey): it was not claimed, and its
	// request must not run.
	IdempotencyOverBudget
)

func (s IdempotencyState) String() string {
	switch s {
	case IdempotencyClaimed:
		return "claimed"
	case IdempotencyFree:
		return "free"
	case IdempotencyInProgress:
		return "in progress"
	case IdempotencyDone:
		return "done"
	case IdempotencyMismatch:
		return "mismatch"
	case IdempotencyOverBudget:
		return "over budget"
	}
	return fmt.Sprintf("IdempotencyState(%d)", int(s))
}

// IdempotencyClaim is the outcome of claiming or looking up an idempotency key.
type IdempotencyClaim struct {
	State IdempotencyState
	// Owner identifies the claim (IdempotencyClaimed): only its holder can finish or
	// release it, so a request whose lease ran out cannot overwrite or drop the claim
	// of the retry that took over.
	Owner []byte
	// TookOver reports (IdempotencyClaimed) that the key was held by a request whose
	// lease ran out: it may have applied its changes before it died.
	TookOver bool
	// Response is the stored response (IdempotencyDone), but for its Body, which
	// IdempotencyResponseBody reads: a replay is charged to the rate limit first, and
	// a refused one read a stored answer of megabytes for nothing.
	Response StoredResponse
}

// StoredResponse is an HTTP response kept for replay.
type StoredResponse struct {
	Status      int
	ContentType string
	Body        []byte
	// Operation and OperationType name the GraphQL operation that answered, as the
	// request's telemetry knew it, so that its replays are logged and counted as that
	// operation: "" when none was known (a refusal before one was, or an answer
	// stored before they were kept).
	Operation, OperationType string
	// Cost is the rate limit's points the request was charged (0 when none), which
	// each replay is charged again; nil for an answer stored before costs were kept.
	Cost *int
}

// ErrIdempotencyClaimLost means the caller no longer holds the key it finishes or
// releases: its lease ran out and another request took the key over.
var ErrIdempotencyClaimLost = errors.New("store: the idempotency key is no longer held by this request")

// idempotencyRow is a key's row as the claim and the lookup read it.
type idempotencyRow struct {
	Claimed       bool    `bun:"claimed"`
	TookOver      bool    `bun:"took_over"`
	RequestHash   []byte  `bun:"request_hash"`
	Expired       bool    `bun:"expired"`
	Status        *int    `bun:"status"`
	ContentType   *string `bun:"content_type"`
	Body          []byte  `bun:"body"`
	Operation     *string `bun:"operation"`
	OperationType *string `bun:"operation_type"`
	Cost          *int    `bun:"cost"`
	// OverBudget marks the row the claim returns when it refused an unknown key for
	// its workspace's budget.
	OverBudget bool `bun:"over_budget"`
}

func (r idempotencyRow) claim(hash, owner []byte) IdempotencyClaim {
	switch {
	case r.Claimed:
		return IdempotencyClaim{State: IdempotencyClaimed, Owner: owner, TookOver: r.TookOver}
	case r.OverBudget:
		return IdempotencyClaim{State: IdempotencyOverBudget}
	case !bytes.Equal(r.RequestHash, hash):
		return IdempotencyClaim{State: IdempotencyMismatch}
	case r.Status != nil:
		res := StoredResponse{Status: *r.Status, Body: r.Body, Cost: r.Cost}
		if r.ContentType != nil {
			res.ContentType = *r.ContentType
		}
		if r.OperationType != nil && r.Operation != nil {
			res.OperationType, res.Operation = *r.OperationType, *r.Operation
		}
		return IdempotencyClaim{State: IdempotencyDone, Response: res}
	case r.Expired:
		return IdempotencyClaim{State: IdempotencyFree}
	}
	return IdempotencyClaim{State: IdempotencyInProgress}
}

// claimSQL claims a key in one statement. room says whether the workspace may keep
// another key: its counter (idempotency_budgets) holds less than the limit ?5 (0 or
// less: no limit). The insert takes an unknown key when there is room; on a conflict,
// the update takes over only a claim in progress whose lease ran out and whose
// request had the same body. A key that has a row is never refused for the budget
// (its row is kept already: the insert goes on to the conflict). When it took
// nothing, the second branch reads the row that stopped it, or says that the budget
// did (over_budget) when there is none.
//
// That read uses the statement's snapshot: when the conflicting row was committed by
// a concurrent statement after this one started (the insert waited for it), the read
// finds nothing, and the claim runs again.
const claimSQL = `
	WITH room AS (
		SELECT ?5 <= 0 OR coalesce((SELECT b.bytes FROM idempotency_budgets AS b WHERE b.workspace_id = ?0), 0) < ?5 AS ok
	), claimed AS (
		INSERT INTO idempotency_keys AS k (workspace_id, key, request_hash, owner, locked_until)
		SELECT ?0, ?1, ?2, ?3, now() + ?4 * interval '1 microsecond' FROM room
		WHERE room.ok OR EXISTS (SELECT FROM idempotency_keys AS e WHERE e.workspace_id = ?0 AND e.key = ?1)
		ON CONFLICT (workspace_id, key) DO UPDATE
		   SET owner = excluded.owner, locked_until = excluded.locked_until, created_at = now()
		 WHERE k.status IS NULL AND k.locked_until <= now() AND k.request_hash = excluded.request_hash
		RETURNING NOT (xmax = 0) AS took_over
	)
	SELECT true AS claimed, took_over, NULL::bytea AS request_hash, false AS expired,
	       NULL::int AS status, NULL::text AS content_type, NULL::bytea AS body,
	       NULL::text AS operation, NULL::text AS operation_type, NULL::int AS cost, false AS over_budget
	FROM claimed
	UNION ALL
	SELECT false, false, k.request_hash, k.status IS NULL AND k.locked_until <= now(),
	       k.status, k.content_type, NULL::bytea, k.operation, k.operation_type, k.cost, k.key IS NULL
	FROM room LEFT JOIN idempotency_keys AS k ON k.workspace_id = ?0 AND k.key = ?1
	WHERE NOT EXISTS (SELECT FROM claimed) AND (k.key IS NOT NULL OR NOT room.ok)`

// ClaimIdempotencyKey claims key for the request whose body hashes to hash, for lease:
// IdempotencyClaimed when the caller now holds it (the key was unknown, or its
// holder's lease ran out), else IdempotencyInProgress, IdempotencyDone or
// IdempotencyMismatch as the key's row stands. An unknown key of a workspace whose
// kept keys count limit bytes or more (FinishIdempotencyKey) is not claimed:
// IdempotencyOverBudget; limit 0 or less is no limit. The limit costs no statement:
// the claim's reads its workspace's counter.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, ws int64, key string, hash []byte, lease time.Duration, limit int64) (IdempotencyClaim, error) {
	owner := make([]byte, 16)
	if _, err := rand.Read(owner); err != nil {
		return IdempotencyClaim{}, err
	}
	for range 3 {
		var rows []idempotencyRow
		err := s.db.NewRaw(claimSQL, ws, key, hash, owner, lease.Microseconds(), limit).Scan(ctx, &rows)
		if err != nil {
			return IdempotencyClaim{}, fmt.Errorf("store: claim idempotency key: %w", err)
		}
		if len(rows) == 1 {
			c := rows[0].claim(hash, owner)
			if c.State == IdempotencyFree {
				// The lease ran out between the insert's check and the read: try again.
				continue
			}
			return c, nil
		}
	}
	// The row keeps changing under the claim (committed, released, re-claimed by
	// others): the caller waits and looks again.
	return IdempotencyClaim{State: IdempotencyInProgress}, nil
}

// IdempotencyKey looks key up for the request whose body hashes to hash, without
// claiming it: IdempotencyFree when it can be claimed, else IdempotencyInProgress,
// IdempotencyDone or IdempotencyMismatch. Requests waiting for another's response poll
// with it: a read, which neither locks nor writes the row.
func (s *Store) IdempotencyKey(ctx context.Context, ws int64, key string, hash []byte) (IdempotencyClaim, error) {
	var rows []idempotencyRow
	err := s.db.NewRaw(`
		SELECT k.request_hash, k.status IS NULL AND k.locked_until <= now() AS expired,
		       k.status, k.content_type, NULL::bytea AS body, k.operation, k.operation_type, k.cost
		FROM idempotency_keys AS k
		WHERE k.workspace_id = ? AND k.key = ?`, ws, key).Scan(ctx, &rows)
	if err != nil {
		return IdempotencyClaim{}, fmt.Errorf("store: look up idempotency key: %w", err)
	}
	if len(rows) == 0 {
		return IdempotencyClaim{State: IdempotencyFree}, nil
	}
	return rows[0].claim(hash, nil), nil
}

// IdempotencyResponseBody returns the body of the response stored for key and the
// request whose body hashes to hash; ok is false when there is none (the key was
// forgotten since it was found done).
func (s *Store) IdempotencyResponseBody(ctx context.Context, ws int64, key string, hash []byte) (body []byte, ok bool, err error) {
	var rows []idempotencyRow
	err = s.db.NewRaw(`
		SELECT k.body FROM idempotency_keys AS k
		WHERE k.workspace_id = ? AND k.key = ? AND k.request_hash = ? AND k.status IS NOT NULL`,
		ws, key, hash).Scan(ctx, &rows)
	if err != nil {
		return nil, false, fmt.Errorf("store: read an idempotency key's response: %w", err)
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	if rows[0].Body == nil {
		return []byte{}, true, nil
	}
	return rows[0].Body, true, nil
}

// IdempotencyRowBytes is what a kept key's row is counted in its workspace's budget
// besides its answer's body and its key (FinishIdempotencyKey), which is counted 3
// times: once in the row, twice over in the primary key's index, whose pages random
// keys leave part empty. Measured on PostgreSQL 15, 50,000 keys kept as the 410 that
// stands in for an answer over the budget (296 bytes), with keys of 36 characters,
// took 637 bytes each (a row of 512 bytes with its line pointer, 125 in the two
// indexes): 233 besides the body and 3 × 36 for the key; with keys of 8 and 255
// characters, 549 and 1,248 bytes, where 240 + 3 × the key counts 560 and 1,301. A
// claim's own dead row version, until vacuum takes it, is not counted.
const IdempotencyRowBytes = 240

// idempotencyRowBytes is what the row of key is counted, besides its answer's body.
func idempotencyRowBytes(key string) int {
	return IdempotencyRowBytes + 3*len(key)
}

// AnswerBudget bounds the bytes a workspace's idempotency keys keep
// (FinishIdempotencyKey): their answers' bodies as sent, before PostgreSQL compresses
// them, and their rows (IdempotencyRowBytes).
type AnswerBudget struct {
	// Bytes is the most the workspace's kept keys may count with their answers whole;
	// 0 or less: no bound (they are counted all the same).
	Bytes int64
	// Status, ContentType and Body are kept instead of an answer that would take the
	// workspace over Bytes (its operation and cost are kept with them).
	Status      int
	ContentType string
	Body        []byte
}

// finishSQL stores a key's answer, or its budget's stand-in, and counts what it
// stored (the key's row ?14 and its body), in one statement. It locks the
// workspace's counter first, so that the answers stored at once are counted one after
// the other, each against the counter as the last left it (a first counter inserted
// by two at once is the exception: both count from 0, and the second adds to the
// first's). Only the answer of a key still held is stored, and only what was stored
// is counted, which the key keeps in budget_bytes for the sweep to give back:
// RETURNING says whether the answer was kept whole, and no row that the claim was
// lost.
const finishSQL = `
	WITH counter AS (
		SELECT bytes FROM idempotency_budgets WHERE workspace_id = ?0 FOR UPDATE
	), fits AS (
		SELECT ?1 <= 0 OR coalesce((SELECT bytes FROM counter), 0) + ?14 + ?2 <= ?1 AS whole
	), stored AS (
		UPDATE idempotency_keys AS k
		SET status = CASE WHEN f.whole THEN ?3 ELSE ?4 END,
		    content_type = CASE WHEN f.whole THEN ?5 ELSE ?6 END,
		    body = CASE WHEN f.whole THEN ?7::bytea ELSE ?8::bytea END,
		    operation = ?9, operation_type = NULLIF(?10, ''), cost = ?11,
		    owner = NULL, locked_until = NULL, budgeted = true,
		    budget_bytes = ?14 + CASE WHEN f.whole THEN ?2 ELSE octet_length(?8::bytea) END
		FROM fits AS f
		WHERE k.workspace_id = ?0 AND k.key = ?12 AND k.owner = ?13
		RETURNING f.whole, k.budget_bytes AS bytes
	)
	INSERT INTO idempotency_budgets AS b (workspace_id, bytes)
	SELECT ?0, bytes FROM stored
	ON CONFLICT (workspace_id) DO UPDATE SET bytes = b.bytes + excluded.bytes
	RETURNING (SELECT whole FROM stored)`

// FinishIdempotencyKey stores the response of the request holding key (owner is its
// claim's Owner), to be replayed to every later request with the key, and adds what
// the key keeps to its workspace's count: its body's length and its row's
// (IdempotencyRowBytes, and 3 bytes per byte of key). When that would take the count
// over budget.Bytes, it stores budget's answer instead (counted in its place), and
// whole is false; the key is kept all the same, since its request ran (a new key is
// refused before it runs instead, ClaimIdempotencyKey's limit). The bytes are given
// back when the key expires (DeleteExpiredIdempotencyKeys). It returns
// ErrIdempotencyClaimLost when the caller no longer holds the key. One statement, as
// every method here.
func (s *Store) FinishIdempotencyKey(ctx context.Context, ws int64, key string, owner []byte, res StoredResponse, budget AnswerBudget) (whole bool, err error) {
	body, instead := res.Body, budget.Body
	if body == nil {
		body = []byte{}
	}
	if instead == nil {
		instead = []byte{}
	}
	var rows []bool
	err = s.db.NewRaw(finishSQL, ws, budget.Bytes, len(body), res.Status, budget.Status, res.ContentType, budget.ContentType,
		body, instead, res.Operation, res.OperationType, res.Cost, key, owner, idempotencyRowBytes(key)).Scan(ctx, &rows)
	if err != nil {
		return false, fmt.Errorf("store: finish idempotency key: %w", err)
	}
	if len(rows) == 0 {
		return false, ErrIdempotencyClaimLost
	}
	return rows[0], nil
}

// ReleaseIdempotencyKey deletes the claim of the request holding key, so that the
// next request with the key executes again. It returns ErrIdempotencyClaimLost when
// the caller no longer holds the key.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, ws int64, key string, owner []byte) error {
	r, err := s.db.NewRaw(`DELETE FROM idempotency_keys WHERE workspace_id = ? AND key = ? AND owner = ?`,
		ws, key, owner).Exec(ctx)
	return claimChanged(r, err, "release")
}

func claimChanged(r sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("store: %s idempotency key: %w", what, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("store: %s idempotency key: %w", what, err)
	} else if n == 0 {
		return ErrIdempotencyClaimLost
	}
	return nil
}

// DeleteExpiredIdempotencyKeys deletes up to limit keys, of any workspace, claimed
// more than olderThan ago (24 hours at least: the database function keeps younger
// keys whatever its caller asks), oldest first, and returns how many it deleted:
// fewer than limit means none is left. Keeping each call bounded keeps it short,
// however many keys expired at once.
func (s *Store) DeleteExpiredIdempotencyKeys(ctx context.Context, olderThan time.Duration, limit int) (int, error) {
	// Across workspaces, so through a function that runs as the tables' owner (row-level
	// security would limit the server's role to the request's workspace).
	var n int
	err := s.db.NewRaw(`SELECT segments_delete_expired_idempotency_keys(?, ?)`, olderThan.Microseconds(), limit).Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired idempotency keys: %w", err)
	}
	return n, nil
}
