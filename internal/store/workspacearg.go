package store

import (
	"strconv"

	"github.com/uptrace/bun/schema"
)

// How a statement names its workspace to the planner.
//
// Each statement of the store holds its workspace by a condition of its own
// (`c.workspace_id = 3`), beside row-level security's, which names the same value
// (PostgreSQL evaluates current_setting when it estimates). Written as a constant,
// the workspace is planned from ANALYZE's statistics: at its size where they hold it
// among their most common workspaces, and as one row where ANALYZE never saw it (its
// rows came after the last analysis: a restore, a load by SQL, an import on another
// server). At one row, every index that leads with workspace_id is as cheap as any
// other, and PostgreSQL takes the smallest: contacts_workspace_id_phone_key for a
// lookup of a contact by its ID, memberships_pkey (workspace, segment, contact) for
// the segments of a contact. Each is then a scan of the whole workspace for every
// row looked up. In a workspace of 1M contacts and 5M memberships loaded by SQL,
// never analyzed, a page of the members of a segment of 17,802 ran past 120 s, and
// most audience pages past the request's 10 s.
//
// So where the statistics do not plan the workspace at its size (plannedAtScale),
// its statements name it as `(SELECT 3::bigint)`: the value of an InitPlan, which
// PostgreSQL estimates as the average workspace (the table's rows over its distinct
// workspaces), never as one row, and row-level security's condition becomes a
// one-time filter. Every lookup then takes the index of all its columns: the same
// page, 8-10 ms. A workspace the statistics know keeps its constant, and its
// statements stay byte for byte what the benchmarks measured.

// workspaceArg is a workspace as a statement's placeholder writes it (see above):
// its ID, as a constant where atScale holds, else as an uncorrelated subquery.
type workspaceArg struct {
	id      int64
	atScale bool // plannedAtScale(id) when the statement was written
}

// workspaceArg returns workspace ws as its statements name it now.
func (s *Store) workspaceArg(ws int64) workspaceArg {
	return workspaceArg{id: ws, atScale: s.plannedAtScale(ws)}
}

// AppendQuery writes the workspace into a statement (bun's schema.QueryAppender).
func (w workspaceArg) AppendQuery(_ schema.QueryGen, b []byte) ([]byte, error) {
	if w.atScale {
		return strconv.AppendInt(b, w.id, 10), nil
	}
	b = append(b, "(SELECT "...)
	b = strconv.AppendInt(b, w.id, 10)
	return append(b, "::bigint)"...), nil
}
