package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

// LastUsedGranularity is how stale an API key's last-used time may get: the statement
// that authenticates a key writes it only when it is older than this, so most requests
// write nothing.
const LastUsedGranularity = time.Minute

// NewAPIKey is what the store keeps of a new API key: never the key itself.
type NewAPIKey struct {
	Hash   []byte // SHA-256 of the key
	Prefix string // the key's first characters, safe to show
	// Name labels the key for people; may be empty.
	Name string
	// Scope is what the key may do; empty means crm.ScopeReadWrite.
	Scope crm.Scope
	// ExpiresIn, when positive, makes the key stop working that long after it is made
	// (by the database's clock), rounded up to the microsecond: never none.
	ExpiresIn time.Duration
}

// apiKeyColumns are the columns of crm.APIKey, in apiKeyRow.
const apiKeyColumns = "workspace_id, id, prefix, name, scope, expires_at, last_used_at, revoked_at, replaced_by, created_at"

type apiKeyRow struct {
	bun.BaseModel `bun:"table:api_keys,alias:k"`
	WorkspaceID   int64      `bun:"workspace_id"`
	ID            int64      `bun:"id"`
	Prefix        string     `bun:"prefix"`
	Name          string     `bun:"name"`
	Scope         string     `bun:"scope"`
	ExpiresAt     *time.Time `bun:"expires_at"`
	LastUsedAt    *time.Time `bun:"last_used_at"`
	RevokedAt     *time.Time `bun:"revoked_at"`
	ReplacedBy    *int64     `bun:"replaced_by"`
	CreatedAt     time.Time  `bun:"created_at"`
}

func (r apiKeyRow) key() crm.APIKey {
	k := crm.APIKey{
		WorkspaceID: r.WorkspaceID, ID: r.ID, Name: r.Name, Prefix: r.Prefix, Scope: crm.Scope(r.Scope),
		ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt,
	}
	if r.ReplacedBy != nil {
		k.ReplacedBy = *r.ReplacedBy
	}
	return k
}

func keyNotFound(id int64) error {
	return crm.Errorf(crm.CodeNotFound, nil, "no API key has ID %d", id)
}

// AddAPIKey adds an API key to a workspace.
func (s *Store) AddAPIKey(ctx context.Context, ws int64, key NewAPIKey) error {
	_, err := addAPIKey(ctx, s.db, ws, key)
	return err
}

// CreateAPIKey adds an API key to a workspace and returns what the store keeps of it.
func (s *Store) CreateAPIKey(ctx context.Context, ws int64, key NewAPIKey) (crm.APIKey, error) {
	return addAPIKey(ctx, s.db, ws, key)
}

func addAPIKey(ctx context.Context, db bun.IDB, ws int64, key NewAPIKey) (crm.APIKey, error) {
	scope := key.Scope
	if scope == "" {
		scope = crm.ScopeReadWrite
	}
	if _, ok := crm.ParseScope(string(scope)); !ok {
		return crm.APIKey{}, crm.Errorf(crm.CodeInvalid, []string{"scope"}, "unknown scope %q: read or read_write", scope)
	}
	var row apiKeyRow
	err := db.NewRaw(`INSERT INTO api_keys (workspace_id, key_hash, prefix, name, scope, expires_at)
		VALUES (?, ?, ?, ?, ?, CASE WHEN ?::bigint > 0 THEN now() + ?::bigint * interval '1 microsecond' END)
		RETURNING `+apiKeyColumns,
		ws, key.Hash, key.Prefix, key.Name, string(scope), ceilUnits(key.ExpiresIn, time.Microsecond), ceilUnits(key.ExpiresIn, time.Microsecond)).
		Scan(ctx, &row)
	return row.key(), err
}

// AuthenticateKey returns the workspace and the key whose hash is keyHash, if the key
// works: not revoked, not expired. Otherwise it returns a NOT_FOUND error, the same
// for a key that never existed. It is one statement, which also records the key's
// last use when the recorded one is older than LastUsedGranularity: a conditional
// UPDATE that matches no row on most requests, and writes each key at most once a
// minute however many requests and servers use it (a concurrent writer's update makes
// the condition false for the others). The statement is the SQL function
// segments_authenticate_key.
func (s *Store) AuthenticateKey(ctx context.Context, keyHash []byte) (crm.Workspace, crm.APIKey, error) {
	var row struct {
		apiKeyRow
		WorkspaceName      string    `bun:"workspace_name"`
		WorkspaceCreatedAt time.Time `bun:"workspace_created_at"`
	}
	// The workspace is not known yet, so row-level security would hide every key:
	// the lookup goes through a function that runs as the tables' owner (migration
	// 20261129000001_rls) and answers only for the one working key with this hash.
	err := s.db.NewRaw(`SELECT * FROM segments_authenticate_key(?, ?)`,
		keyHash, LastUsedGranularity.Microseconds()).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.Workspace{}, crm.APIKey{}, crm.Errorf(crm.CodeNotFound, nil, "no workspace has this API key")
	}
	if err != nil {
		return crm.Workspace{}, crm.APIKey{}, err
	}
	ws := crm.Workspace{ID: row.WorkspaceID, Name: row.WorkspaceName, CreatedAt: row.WorkspaceCreatedAt}
	return ws, row.key(), nil
}

// APIKeys returns the keys of a workspace, revoked and expired ones included, oldest
// first.
func (s *Store) APIKeys(ctx context.Context, ws int64) ([]crm.APIKey, error) {
	var rows []apiKeyRow
	err := s.db.NewRaw(`SELECT `+apiKeyColumns+` FROM api_keys WHERE workspace_id = ? ORDER BY id`, ws).Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	out := make([]crm.APIKey, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}

// APIKey returns the key with the ID, or a NOT_FOUND error.
func (s *Store) APIKey(ctx context.Context, id int64) (crm.APIKey, error) {
	var row apiKeyRow
	err := s.db.NewRaw(`SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id).Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.APIKey{}, keyNotFound(id)
	}
	return row.key(), err
}

// RotateAPIKey replaces a working key by a new one (key: its hash and prefix) with the
// same workspace, name and scope. The new key lives as long as the old one was made
// to (no expiry if it had none). The old key keeps working for grace (0: it stops at
// once), or until its own expiry if that comes first; a server that cached it
// (auth.WithKeyCache) accepts it up to its cache's ttl longer. A revoked, expired or already
// rotated key cannot be rotated: an INVALID error says why.
func (s *Store) RotateAPIKey(ctx context.Context, id int64, grace time.Duration, key NewAPIKey) (old, replacement crm.APIKey, err error) {
	if grace < 0 {
		return old, replacement, crm.Errorf(crm.CodeInvalid, []string{"grace"}, "the grace period cannot be negative")
	}
	err = s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var cur struct {
			apiKeyRow
			Expired  bool `bun:"expired"`
			Deleting bool `bun:"deleting"`
		}
		err := tx.NewRaw(`SELECT `+apiKeyColumns+`, coalesce(expires_at <= now(), false) AS expired,
			EXISTS (SELECT FROM workspace_deletions d WHERE d.workspace_id = api_keys.workspace_id) AS deleting
			FROM api_keys WHERE id = ? FOR UPDATE`, id).Scan(ctx, &cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return keyNotFound(id)
		case err != nil:
			return err
		case cur.Deleting:
			// Its replacement could never work (DeleteWorkspace cut the workspace off).
			return crm.Errorf(crm.CodeInvalid, nil, "API key %d's workspace is being deleted: run workspace delete again to finish, not keys rotate", id)
		case cur.RevokedAt != nil:
			return crm.Errorf(crm.CodeInvalid, nil, "API key %d is revoked; create a new one instead", id)
		case cur.ReplacedBy != nil:
			return crm.Errorf(crm.CodeInvalid, nil, "API key %d was already rotated; rotate its replacement, key %d", id, *cur.ReplacedBy)
		case cur.Expired:
			return crm.Errorf(crm.CodeInvalid, nil, "API key %d has expired; create a new one instead", id)
		}
		var added apiKeyRow
		if err := tx.NewRaw(`INSERT INTO api_keys (workspace_id, key_hash, prefix, name, scope, expires_at)
			SELECT workspace_id, ?, ?, name, scope, now() + (expires_at - created_at)
			  FROM api_keys WHERE workspace_id = ? AND id = ?
			RETURNING `+apiKeyColumns, key.Hash, key.Prefix, cur.WorkspaceID, id).Scan(ctx, &added); err != nil {
			return err
		}
		var updated apiKeyRow
		if err := tx.NewRaw(`UPDATE api_keys
			SET expires_at = least(coalesce(expires_at, 'infinity'), now() + ?::bigint * interval '1 microsecond'),
			    replaced_by = ?
			WHERE workspace_id = ? AND id = ?
			RETURNING `+apiKeyColumns, ceilUnits(grace, time.Microsecond), added.ID, cur.WorkspaceID, id).Scan(ctx, &updated); err != nil {
			return err
		}
		old, replacement = updated.key(), added.key()
		return nil
	})
	return old, replacement, err
}

// RevokeAPIKey makes a key stop working at once, as far as the database says (a
// server that cached it, see auth.WithKeyCache, accepts it up to its cache's ttl
// more), and returns it. Revoking a revoked key changes nothing.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) (crm.APIKey, error) {
	var row apiKeyRow
	err := s.db.NewRaw(`UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = ? RETURNING `+apiKeyColumns, id).
		Scan(ctx, &row)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.APIKey{}, keyNotFound(id)
	}
	return row.key(), err
}
