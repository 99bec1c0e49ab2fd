package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// The check of composed texts. Names, descriptions and emails are stored composed
// (Unicode NFC): the API composes what it writes (crm.normalText) and search terms,
// and migration 20261206000003_compose_texts composed what was stored before. A
// server older than that migration still writes what it is sent, and during a
// rolling upgrade it keeps serving after the migration ran: a contact named "José"
// with a combining accent is then missed by the search "José", and a segment
// "Cafe" with a combining accent sits beside "Café", which the names' uniqueness
// (ignoring case) was to refuse. CheckTexts finds such rows and RepairTexts
// composes them, as the migration did.

// SegmentTexts is a segment whose name or description is not composed.
type SegmentTexts struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"`
	SegmentID     int64  `bun:"segment_id"`
	SegmentName   string `bun:"segment_name"` // as stored (before a repair)
	Name          bool   `bun:"name"`         // its name is not composed
	Description   bool   `bun:"description"`  // its description is not composed
	// TakenBy is, when its name is not composed, the segment of the workspace whose
	// name it composes to (ignoring case), which keeps it: one composed already, else
	// the oldest of those not composed. 0 when there is none. A repair leaves such a
	// name as it is (two segments would have one name), for someone to rename one.
	TakenBy     int64  `bun:"taken_by"`
	TakenByName string `bun:"taken_by_name"`
}

// ContactTexts is a workspace with contacts whose name or email is not composed.
type ContactTexts struct {
	WorkspaceID   int64  `bun:"workspace_id"`
	WorkspaceName string `bun:"workspace_name"`
	Contacts      int64  `bun:"contacts"`
}

// uncomposed is the condition that the text column c is not composed. Text of ASCII
// alone is composed, and most names and emails are: the length test (octet_length
// is read from the value's header, length counts the bytes that start a character)
// spares PostgreSQL looking each of their characters up in its tables of Unicode.
// Measured on 300,000 contacts of the benchmark's dataset (all ASCII), the scan took
// 92 ms with it and 634 ms without; with every name non-ASCII, 308 ms and 626 ms.
func uncomposed(c string) string {
	return `(octet_length(` + c + `) <> length(` + c + `) AND ` + c + ` IS NOT NFC NORMALIZED)`
}

// segmentTextsSQL finds every segment whose name or description is not composed, in
// one snapshot, with the segment that keeps its composed name (SegmentTexts.TakenBy):
// the same rule as the migration's. The first argument, when not NULL, restricts it
// to the segments given as (workspace_id, segment_id) pairs by the next two.
var segmentTextsSQL = `
	SELECT s.workspace_id, w.name AS workspace_name, s.id AS segment_id, s.name AS segment_name,
	       ` + uncomposed("s.name") + ` AS name, coalesce(` + uncomposed("s.description") + `, false) AS description,
	       coalesce(t.id, 0) AS taken_by, coalesce(t.name, '') AS taken_by_name
	FROM segments s
	JOIN workspaces w ON w.id = s.workspace_id
	LEFT JOIN LATERAL (
		SELECT t.id, t.name FROM segments t
		WHERE ` + uncomposed("s.name") + `
		  AND t.workspace_id = s.workspace_id AND t.id <> s.id
		  AND lower(normalize(t.name, NFC)) = lower(normalize(s.name, NFC))
		  AND (t.name IS NFC NORMALIZED OR t.id < s.id)
		ORDER BY t.name IS NFC NORMALIZED DESC, t.id
		LIMIT 1
	) t ON true
	WHERE (? OR (s.workspace_id, s.id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[])))
	  AND (` + uncomposed("s.name") + ` OR ` + uncomposed("s.description") + `)
	ORDER BY s.workspace_id, s.id`

// contactsUncomposed is the condition on contacts c of one whose name or email is
// not composed.
var contactsUncomposed = `(` + uncomposed("c.name") + ` OR ` + uncomposed("c.email") + `)`

// contactTextsSQL counts the contacts whose name or email is not composed, by
// workspace. It reads every contact (uncomposed: about 0.3 s at a million).
var contactTextsSQL = `
	SELECT c.workspace_id, w.name AS workspace_name, count(*) AS contacts
	FROM contacts c JOIN workspaces w ON w.id = c.workspace_id
	WHERE ` + contactsUncomposed + `
	GROUP BY 1, 2 ORDER BY 1`

// composes reports whether PostgreSQL can compose texts in db's database: only in a
// UTF-8 one, and a database of any other encoding has nothing to compose.
func composes(ctx context.Context, db bun.IDB) (bool, error) {
	var enc string
	err := db.NewRaw("SELECT current_setting('server_encoding')").Scan(ctx, &enc)
	return enc == "UTF8", err
}

func segmentTexts(ctx context.Context, db bun.IDB, wss, ids []int64) ([]SegmentTexts, error) {
	var found []SegmentTexts
	err := db.NewRaw(segmentTextsSQL, wss == nil, pgdialect.Array(wss), pgdialect.Array(ids)).Scan(ctx, &found)
	return found, err
}

// CheckTexts returns every segment whose name or description is not composed (Unicode
// NFC), by workspace and segment, and every workspace with contacts whose name or
// email is not, with how many. It only reads, takes no locks, and is safe while the
// API serves writes.
func (s *Store) CheckTexts(ctx context.Context) ([]SegmentTexts, []ContactTexts, error) {
	var segs []SegmentTexts
	var contacts []ContactTexts
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if ok, err := composes(ctx, tx); err != nil || !ok {
			return err
		}
		var err error
		if segs, err = segmentTexts(ctx, tx, nil, nil); err != nil {
			return err
		}
		return tx.NewRaw(contactTextsSQL).Scan(ctx, &contacts)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: check texts: %w", err)
	}
	return segs, contacts, nil
}

// RepairTexts composes the names and descriptions of the segments and the names and
// emails of the contacts that CheckTexts reports, in one transaction, and returns
// what it found as CheckTexts does (counted before the repair). A segment name whose
// composed form is another segment's name (SegmentTexts.TakenBy) is left as it is:
// renaming either segment is its workspace's call, and the two must not share a name.
// The other texts of such a segment are composed all the same.
//
// Composing moves updated_at, as every other change of what clients see does: a
// client that syncs by updatedAt gets the composed texts. (Migration
// 20261206000003_compose_texts did not move it.) Search needs nothing else: the
// contacts' search_text is a generated column and the segments' search index is on
// an expression, so both follow the texts.
//
// It is safe while the API serves writes: it locks the segments it composes in id
// order (every writer's order), then looks again under the locks. A segment created
// or renamed to a composed name in between makes the update fail on the names'
// unique index, and the whole repair runs again (errConcurrentChange), finding that
// name taken. The contacts are composed by one UPDATE, whose condition PostgreSQL
// checks again on a row a writer changed meanwhile.
func (s *Store) RepairTexts(ctx context.Context) ([]SegmentTexts, []ContactTexts, error) {
	var segs []SegmentTexts
	var contacts []ContactTexts
	err := s.inLongTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		segs, contacts = nil, nil
		if ok, err := composes(ctx, tx); err != nil || !ok {
			return err
		}
		found, err := segmentTexts(ctx, tx, nil, nil)
		if err != nil {
			return err
		}
		if len(found) > 0 {
			wss, ids := make([]int64, len(found)), make([]int64, len(found))
			for i, f := range found {
				wss[i], ids[i] = f.WorkspaceID, f.SegmentID
			}
			err := tx.NewRaw(`SELECT id FROM segments
				WHERE (workspace_id, id) IN (SELECT * FROM unnest(?::bigint[], ?::bigint[]))
				ORDER BY id FOR UPDATE`, pgdialect.Array(wss), pgdialect.Array(ids)).Scan(ctx, new([]int64))
			if err != nil {
				return err
			}
			if segs, err = segmentTexts(ctx, tx, wss, ids); err != nil {
				return err
			}
			wss, ids = wss[:0], ids[:0]
			var names []bool
			for _, f := range segs {
				wss, ids, names = append(wss, f.WorkspaceID), append(ids, f.SegmentID), append(names, f.Name && f.TakenBy == 0)
			}
			_, err = tx.NewRaw(`
				UPDATE segments s
				SET name = CASE WHEN r.name THEN normalize(s.name, NFC) ELSE s.name END,
				    description = normalize(s.description, NFC), updated_at = now()
				FROM unnest(?::bigint[], ?::bigint[], ?::boolean[]) AS r(workspace_id, id, name)
				WHERE s.workspace_id = r.workspace_id AND s.id = r.id`,
				pgdialect.Array(wss), pgdialect.Array(ids), pgdialect.Array(names)).Exec(ctx)
			if violates(err, "segments_name") {
				return fmt.Errorf("%w: %w", errConcurrentChange, err)
			}
			if err != nil {
				return err
			}
		}
		return tx.NewRaw(`
			WITH composed AS (
				UPDATE contacts c SET name = normalize(c.name, NFC), email = normalize(c.email, NFC), updated_at = now()
				WHERE `+contactsUncomposed+`
				RETURNING c.workspace_id
			)
			SELECT c.workspace_id, w.name AS workspace_name, count(*) AS contacts
			FROM composed c JOIN workspaces w ON w.id = c.workspace_id
			GROUP BY 1, 2 ORDER BY 1`).Scan(ctx, &contacts)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: repair texts: %w", err)
	}
	return segs, contacts, nil
}
