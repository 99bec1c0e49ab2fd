package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"

	"github.com/segments/segments/internal/crm"
)

type workspaceRow struct {
	bun.BaseModel `bun:"table:workspaces,alias:w"`
	crm.Workspace
}

type apiKeyRow struct {
	bun.BaseModel `bun:"table:api_keys,alias:k"`
	WorkspaceID   int64  `bun:"workspace_id"`
	KeyHash       []byte `bun:"key_hash"`
	Prefix        string `bun:"prefix"`
}

// NewAPIKey is what the store keeps of a new API key: never the key itself.
type NewAPIKey struct {
	Hash   []byte // SHA-256 of the key
	Prefix string // the key's first characters, safe to show
}

// CreateWorkspace creates a workspace together with its first API key.
func (s *Store) CreateWorkspace(ctx context.Context, name string, key NewAPIKey) (crm.Workspace, error) {
	var ws workspaceRow
	ws.Name = name
	err := s.inTx(ctx, func(tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&ws).Column("name").Returning("*").Exec(ctx); err != nil {
			return err
		}
		return addAPIKey(ctx, tx, ws.ID, key)
	})
	return ws.Workspace, err
}

// AddAPIKey adds an API key to a workspace.
func (s *Store) AddAPIKey(ctx context.Context, ws int64, key NewAPIKey) error {
	return addAPIKey(ctx, s.db, ws, key)
}

func addAPIKey(ctx context.Context, db bun.IDB, ws int64, key NewAPIKey) error {
	_, err := db.NewInsert().Model(&apiKeyRow{WorkspaceID: ws, KeyHash: key.Hash, Prefix: key.Prefix}).Exec(ctx)
	return err
}

// WorkspaceByKey returns the workspace an unrevoked API key belongs to, or a
// NOT_FOUND error.
func (s *Store) WorkspaceByKey(ctx context.Context, keyHash []byte) (crm.Workspace, error) {
	var ws workspaceRow
	err := s.db.NewSelect().Model(&ws).
		Where("w.id = (SELECT k.workspace_id FROM api_keys AS k WHERE k.key_hash = ? AND k.revoked_at IS NULL LIMIT 1)", keyHash).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.Workspace{}, crm.Errorf(crm.CodeNotFound, nil, "no workspace has this API key")
	}
	return ws.Workspace, err
}

// Workspace returns a workspace, or a NOT_FOUND error.
func (s *Store) Workspace(ctx context.Context, id int64) (crm.Workspace, error) {
	return s.workspaceWhere(ctx, "w.id = ?", id)
}

// WorkspaceByName returns the oldest workspace with the name, or a NOT_FOUND error.
func (s *Store) WorkspaceByName(ctx context.Context, name string) (crm.Workspace, error) {
	return s.workspaceWhere(ctx, "w.name = ?", name)
}

func (s *Store) workspaceWhere(ctx context.Context, cond string, arg any) (crm.Workspace, error) {
	var ws workspaceRow
	err := s.db.NewSelect().Model(&ws).Where(cond, arg).OrderExpr("w.id").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.Workspace{}, crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
	}
	return ws.Workspace, err
}
