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

// CreateWorkspace creates a workspace together with its first API key (read_write
// unless key.Scope says otherwise). The name is kept as crm.NormalizeWorkspaceName
// returns it, or refused with its error.
func (s *Store) CreateWorkspace(ctx context.Context, name string, key NewAPIKey) (crm.Workspace, error) {
	var ws workspaceRow
	var err error
	if ws.Name, err = crm.NormalizeWorkspaceName(name); err != nil {
		return crm.Workspace{}, err
	}
	err = s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(&ws).Column("name").Returning("*").Exec(ctx); err != nil {
			return err
		}
		_, err := addAPIKey(ctx, tx, ws.ID, key)
		return err
	})
	return ws.Workspace, err
}

// Workspace returns a workspace that is not being deleted, or a NOT_FOUND error.
func (s *Store) Workspace(ctx context.Context, id int64) (crm.Workspace, error) {
	// A dashboard session names its workspace before it acts for it: the lookup is
	// scoped to that workspace for row-level security. A workspace being deleted is
	// cut off (DeleteWorkspace): its policy hides it from the server's role, and the
	// condition says so too, should the role have BYPASSRLS (which check reports).
	return s.workspaceWhere(WithWorkspace(ctx, id),
		"w.id = ? AND NOT EXISTS (SELECT FROM workspace_deletions d WHERE d.workspace_id = w.id)", id)
}

// WorkspaceEvenDeleting returns a workspace, also one being deleted (which Workspace
// does not), or a NOT_FOUND error: the administrative commands' lookup by ID, which
// must find a workspace whose deletion stopped midway to finish it.
func (s *Store) WorkspaceEvenDeleting(ctx context.Context, id int64) (crm.Workspace, error) {
	return s.workspaceWhere(WithWorkspace(ctx, id), "w.id = ?", id)
}

// WorkspaceByName returns the oldest workspace with the name, or a NOT_FOUND error.
func (s *Store) WorkspaceByName(ctx context.Context, name string) (crm.Workspace, error) {
	return s.workspaceWhere(ctx, "w.name = ?", name)
}

// WorkspacesByName returns up to limit workspaces with the name, oldest first: more
// than one means the name is ambiguous.
func (s *Store) WorkspacesByName(ctx context.Context, name string, limit int64) ([]crm.Workspace, error) {
	return s.workspacesWhere(ctx, "w.name = ?", name, limit)
}

// workspacesWhere returns up to limit workspaces that meet cond, oldest first.
func (s *Store) workspacesWhere(ctx context.Context, cond string, arg any, limit int64) ([]crm.Workspace, error) {
	var rows []workspaceRow
	if err := s.db.NewSelect().Model(&rows).Where(cond, arg).OrderExpr("w.id").Limit(limit).Scan(ctx); err != nil {
		return nil, err
	}
	out := make([]crm.Workspace, len(rows))
	for i, r := range rows {
		out[i] = r.Workspace
	}
	return out, nil
}

// WorkspacesNamedFrom returns up to limit workspaces whose names start with prefix,
// oldest first.
func (s *Store) WorkspacesNamedFrom(ctx context.Context, prefix string, limit int64) ([]crm.Workspace, error) {
	return s.workspacesWhere(ctx, "starts_with(w.name, ?)", prefix, limit)
}

func (s *Store) workspaceWhere(ctx context.Context, cond string, arg any) (crm.Workspace, error) {
	var ws workspaceRow
	err := s.db.NewSelect().Model(&ws).Where(cond, arg).OrderExpr("w.id").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return crm.Workspace{}, crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
	}
	return ws.Workspace, err
}

// RenameWorkspace gives a workspace another name (checked as CreateWorkspace checks
// it), or returns a NOT_FOUND error.
func (s *Store) RenameWorkspace(ctx context.Context, id int64, name string) error {
	name, err := crm.NormalizeWorkspaceName(name)
	if err != nil {
		return err
	}
	res, err := s.db.NewUpdate().Model((*workspaceRow)(nil)).Set("name = ?", name).Where("w.id = ?", id).Exec(ctx)
	return oneWorkspace(res, err)
}

// oneWorkspace is the error of a statement on one workspace by its ID.
func oneWorkspace(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = crm.Errorf(crm.CodeNotFound, nil, "no such workspace")
	}
	return err
}
