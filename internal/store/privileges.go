package store

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
)

// The privileges of the server's role (AppRole), declared in one place: appPrivileges
// says, for every table, sequence and function the migrations make, what the role
// holds on it, and what PUBLIC (every role) does. Row-level security holds the role to
// one workspace of the tables it may use; what it may not touch at all (api_keys, the
// epoch of the change feed, the migrations' own tables) only its privileges keep from
// it, so a compromised server could otherwise mint API keys or rewrite the feed's
// epoch.
//
// Privileges drift without a migration: pg_restore --clean into the database in use
// makes every table again, and a table made in a database migrated before
// 20261213000001_server_role_privileges took the schema's default privileges, which
// gave the role SELECT, INSERT, UPDATE and DELETE on it (the dump's grants only add to
// those); a GRANT by hand does the same. So Migrate makes them what is declared after
// every run (revoking what is extra, granting what is missing), CheckPrivileges reports
// the difference for segments check, and RepairPrivileges repairs it for check
// --repair. Tests compare the declaration with what the migrations alone grant, object
// by object, and fail on an object it does not declare: a migration that makes one
// declares it here.

// Privileges as PostgreSQL names them.
const (
	privNone = ""
	privRead = "SELECT"
	privDML  = "SELECT, INSERT, UPDATE, DELETE"
	privCall = "EXECUTE"
)

// The kinds of objects, as PrivilegeDrift.Object names them.
const (
	kindTable  = "table" // any relation: GRANT ... ON TABLE takes views too
	kindSeq    = "sequence"
	kindFunc   = "function" // an aggregate too
	kindColumn = "column"   // none is declared: every column privilege is extra
)

// declaredPrivileges is what the server's role and PUBLIC hold on one object.
type declaredPrivileges struct {
	kind string
	// name is a relation's name, or a function's with its argument types as
	// oidvectortypes writes them.
	name string
	// app is what AppRole holds, public what PUBLIC holds: privileges, separated by
	// ", ", in any order.
	app, public string
}

// appPrivileges is what the migrations grant the server's role and PUBLIC, object by
// object: the API's tables for the statements of its requests (row-level security
// holds those to one workspace), the SECURITY DEFINER functions through which it does
// the few things that cross workspaces, and nothing else. PUBLIC holds nothing but
// EXECUTE on the functions that run as their caller, which PostgreSQL grants it by
// default and the triggers need (they call them as the role that changes the table):
// a SECURITY DEFINER function runs as the owner, above row-level security, and PUBLIC
// is every role of the cluster, so none of those is PUBLIC's (a test checks).
var appPrivileges = []declaredPrivileges{
	// The tenant tables (20261129000001_rls and the migration that made each).
	{kindTable, "segments", privDML, privNone},
	{kindTable, "contacts", privDML, privNone},
	{kindTable, "memberships", privDML, privNone},
	{kindTable, "idempotency_keys", privDML, privNone},
	{kindTable, "rate_limit_buckets", privDML, privNone},
	{kindTable, "segment_bitmaps", privDML, privNone},
	{kindTable, "contact_counts", privDML, privNone},
	{kindTable, "segment_catalog_versions", "SELECT, INSERT, UPDATE", privNone},
	{kindTable, "deleted_contacts", "SELECT, INSERT, DELETE", privNone},
	// A workspace's kept answers' bytes (20261215000001): counted up as a mutation's
	// answer is kept; the sweep, run as the owner, counts them down.
	{kindTable, "idempotency_budgets", "SELECT, INSERT, UPDATE", privNone},
	// The API reads its own workspace; workspaces and keys are the administrative
	// commands' to make and manage, and a key is found by its hash through
	// segments_authenticate_key.
	{kindTable, "workspaces", privRead, privNone},
	{kindTable, "api_keys", privNone, privNone},
	// Read with each page of the change feed; written by the owner as the store opens.
	{kindTable, "change_feed_epoch", privRead, privNone},
	// The owner's copies of the search statistics, read through functions that run as
	// the owner (20261202000002, 20261202000003).
	{kindTable, "contact_search_sample", privNone, privNone},
	{kindTable, "contact_search_trigrams", privNone, privNone},
	// The migrations' own.
	{kindTable, "bun_migrations", privNone, privNone},
	{kindTable, "bun_migration_locks", privNone, privNone},
	{kindTable, "migration_compatibility", privNone, privNone},
	// Identity columns' sequences: an INSERT draws from them without a privilege.
	{kindSeq, "workspaces_id_seq", privNone, privNone},
	{kindSeq, "api_keys_id_seq", privNone, privNone},
	{kindSeq, "segments_id_seq", privNone, privNone},
	{kindSeq, "contacts_id_seq", privNone, privNone},
	{kindSeq, "bun_migrations_id_seq", privNone, privNone},
	{kindSeq, "bun_migration_locks_id_seq", privNone, privNone},

	// SECURITY DEFINER: the server's role alone.
	{kindFunc, "segments_authenticate_key(bytea, bigint)", privCall, privNone},
	{kindFunc, "segments_delete_expired_idempotency_keys(bigint, integer)", privCall, privNone},
	{kindFunc, "segments_sample_contact_search()", privCall, privNone},
	{kindFunc, "segments_contact_search_share(text, text)", privCall, privNone},
	{kindFunc, "segments_contact_search_trigrams(timestamp with time zone)", privCall, privNone},
	{kindFunc, "segments_workspace_rows()", privCall, privNone},
	{kindFunc, "segments_analyze_workspaces(text[])", privCall, privNone},
	{kindFunc, "segments_workspace_counts(double precision)", privCall, privNone},
	// Run as their caller, under the policies; granted as the others.
	{kindFunc, "segments_of_contacts(bigint, bigint[])", privCall, privNone},
	{kindFunc, "segments_pass_advisory_lock(integer, integer)", privCall, privNone},
	// Run as their caller, by the triggers: PUBLIC's, as PostgreSQL makes them.
	{kindFunc, "segment_bitmap_chunks(bigint[], bigint[])", privNone, privCall},
	{kindFunc, "segment_bits_concat(bit varying)", privNone, privCall},
	{kindFunc, "segment_catalog_bump(bigint[])", privNone, privCall},
	// The folding of searched text (20261216000005): computed by the contacts' and
	// segments' generated columns as the role that writes them, and by searches.
	{kindFunc, "segments_search_fold(text)", privNone, privCall},
	{kindFunc, "segments_search_pattern(text)", privNone, privCall},
	// Trigger functions, which PostgreSQL runs for the trigger whatever their
	// privileges, and no one can call otherwise.
	{kindFunc, "memberships_count_inserted()", privNone, privCall},
	{kindFunc, "memberships_count_deleted()", privNone, privCall},
	{kindFunc, "memberships_bitmaps_inserted()", privNone, privCall},
	{kindFunc, "memberships_bitmaps_deleted()", privNone, privCall},
	{kindFunc, "contacts_count_inserted()", privNone, privCall},
	{kindFunc, "contacts_count_deleted()", privNone, privCall},
	{kindFunc, "memberships_references_checked()", privNone, privCall},
	{kindFunc, "contacts_memberships_deleted()", privNone, privCall},
	{kindFunc, "segments_memberships_deleted()", privNone, privCall},
	{kindFunc, "membership_keys_kept()", privNone, privCall},
	{kindFunc, "memberships_truncated()", privNone, privCall},
	{kindFunc, "contacts_count_truncated()", privNone, privCall},
	{kindFunc, "referrers_memberships_truncated()", privNone, privCall},
	{kindFunc, "contact_search_trigrams_copied()", privNone, privCall},
	{kindFunc, "segments_catalog_inserted()", privNone, privCall},
	{kindFunc, "segments_catalog_deleted()", privNone, privCall},
	{kindFunc, "segments_catalog_updated()", privNone, privCall},
	{kindFunc, "segments_catalog_truncated()", privNone, privCall},
	{kindFunc, "set_change_xid()", privNone, privCall},
	{kindFunc, "contacts_deletions_recorded()", privNone, privCall},
}

// PrivilegeDrift is one object of the schema on which the server's role (AppRole), or
// PUBLIC, holds other privileges than declared.
type PrivilegeDrift struct {
	// Object is the object, as "table api_keys", "sequence api_keys_id_seq", "function
	// segments_authenticate_key(bytea, bigint)" or "column api_keys.key_hash".
	Object string
	// Grantee is AppRole or "PUBLIC".
	Grantee string
	// Extra are the privileges it holds beyond the declaration, Missing those declared
	// that it lacks, in PostgreSQL's words.
	Extra, Missing []string
	// Declared is what it is meant to hold, as Extra and Missing are.
	Declared []string

	target, column string // what GRANT and REVOKE name: "TABLE public.x", and "col" for a column's
}

// heldPrivileges is a row of heldPrivilegesSQL.
type heldPrivileges struct {
	Kind   string   `bun:"kind"`
	Name   string   `bun:"name"`
	Target string   `bun:"target"`
	Column string   `bun:"col"`
	App    []string `bun:"app,array"`
	Public []string `bun:"public,array"`
}

// heldPrivilegesSQL lists every relation and function of the schema (not those of an
// extension) and every column granted to anyone, with what AppRole (the argument) and
// PUBLIC hold on each, from their ACLs: NULL, an object no GRANT or REVOKE changed,
// holds PostgreSQL's defaults (acldefault: PUBLIC may EXECUTE a function).
const heldPrivilegesSQL = `
	WITH objects AS (
		SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind, c.relname::text AS name,
		       format('%s %I.%I', CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname) AS target,
		       '' AS col,
		       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
		  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		UNION ALL
		SELECT 'column', c.relname || '.' || a.attname, format('TABLE %I.%I', n.nspname, c.relname), quote_ident(a.attname), a.attacl
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT 'function', p.proname || '(' || oidvectortypes(p.proargtypes) || ')', 'ROUTINE ' || p.oid::regprocedure::text, '',
		       coalesce(p.proacl, acldefault('f', p.proowner))
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = current_schema()
		  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
	)
	SELECT o.kind, o.name, o.target, o.col,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = r.oid), '{}') AS app,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = 0), '{}') AS public
	FROM objects o
	LEFT JOIN LATERAL aclexplode(o.acl) a ON true
	LEFT JOIN pg_roles r ON r.rolname = ?
	GROUP BY 1, 2, 3, 4
	ORDER BY 1, 2`

// privilegeOrder is the order privileges are listed in: GRANT's.
var privilegeOrder = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "EXECUTE"}

func sortPrivileges(p []string) {
	slices.SortFunc(p, func(a, b string) int {
		ia, ib := slices.Index(privilegeOrder, a), slices.Index(privilegeOrder, b)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
}

// privilegeDrift compares what is held with decl. An object decl does not name is
// left out (a table of the operator's, or of a newer version's migration): its
// privileges are not this binary's to judge. A column of a table decl names holds
// nothing of either grantee.
func privilegeDrift(decl []declaredPrivileges, held []heldPrivileges) []PrivilegeDrift {
	declared := map[string]declaredPrivileges{}
	for _, d := range decl {
		declared[d.kind+" "+d.name] = d
	}
	var drift []PrivilegeDrift
	for _, h := range held {
		var d declaredPrivileges
		var ok bool
		if h.Kind == kindColumn {
			table, _, _ := strings.Cut(h.Name, ".")
			_, ok = declared[kindTable+" "+table]
		} else {
			d, ok = declared[h.Kind+" "+h.Name]
		}
		if !ok {
			continue
		}
		for _, g := range []struct {
			grantee        string
			held, declared []string
		}{{AppRole, h.App, splitPrivileges(d.app)}, {"PUBLIC", h.Public, splitPrivileges(d.public)}} {
			pd := PrivilegeDrift{Object: h.Kind + " " + h.Name, Grantee: g.grantee, Declared: g.declared, target: h.Target, column: h.Column}
			for _, p := range g.held {
				if !slices.Contains(g.declared, p) {
					pd.Extra = append(pd.Extra, p)
				}
			}
			for _, p := range g.declared {
				if !slices.Contains(g.held, p) {
					pd.Missing = append(pd.Missing, p)
				}
			}
			if len(pd.Extra)+len(pd.Missing) > 0 {
				sortPrivileges(pd.Extra)
				sortPrivileges(pd.Missing)
				drift = append(drift, pd)
			}
		}
	}
	return drift
}

func splitPrivileges(s string) []string {
	if s == "" {
		return nil
	}
	p := strings.Split(s, ", ")
	sortPrivileges(p)
	return p
}

// readPrivileges reads what AppRole and PUBLIC hold on the schema's objects.
func (s *Store) readPrivileges(ctx context.Context) ([]heldPrivileges, error) {
	var held []heldPrivileges
	if err := s.db.NewRaw(heldPrivilegesSQL, AppRole).Scan(ctx, &held); err != nil {
		return nil, fmt.Errorf("store: read the privileges of role %s: %w", AppRole, err)
	}
	return held, nil
}

// CheckPrivileges returns each table, sequence, column and function of the schema on
// which the server's role (AppRole) or PUBLIC holds other privileges than the
// migrations grant (appPrivileges), by object. It only reads.
func (s *Store) CheckPrivileges(ctx context.Context) ([]PrivilegeDrift, error) {
	held, err := s.readPrivileges(ctx)
	if err != nil {
		return nil, err
	}
	return privilegeDrift(appPrivileges, held), nil
}

// RepairPrivileges makes the privileges of the server's role and PUBLIC what the
// migrations grant, as Migrate does after every run, holding the migrations' lock (two
// sessions granting on one object at once can fail), and returns what it found
// (repaired), and what is still held or lacking after it (left): privileges another
// grantor gave, whose grant only it or a superuser can take back. It is safe while the
// server runs: it takes from the role only what the server never uses, and GRANT and
// REVOKE wait for no lock on the tables.
func (s *Store) RepairPrivileges(ctx context.Context) (repaired, left []PrivilegeDrift, err error) {
	err = s.holding(ctx, "migrations", "?", migrationLockKey, func(bun.Tx) error {
		repaired, left, err = s.enforcePrivileges(ctx, appPrivileges)
		return err
	})
	return repaired, left, err
}

// enforcePrivileges revokes from AppRole and PUBLIC what they hold beyond decl, and
// grants them what they lack, in one transaction, and returns the drift it found and
// the drift left after. The caller holds the migrations' lock.
func (s *Store) enforcePrivileges(ctx context.Context, decl []declaredPrivileges) (found, left []PrivilegeDrift, err error) {
	held, err := s.readPrivileges(ctx)
	if err != nil {
		return nil, nil, err
	}
	if found = privilegeDrift(decl, held); len(found) == 0 {
		return nil, nil, nil
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, d := range found {
			grantee := "PUBLIC"
			if d.Grantee == AppRole {
				grantee = AppRole // a constant: no quoting needed
			}
			if len(d.Extra) > 0 {
				// CASCADE: grants the role made from a grant option go with it.
				q := fmt.Sprintf("REVOKE %s ON %s FROM %s CASCADE", privilegeList(d.Extra, d.column), d.target, grantee)
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
			}
			if len(d.Missing) > 0 {
				q := fmt.Sprintf("GRANT %s ON %s TO %s", privilegeList(d.Missing, d.column), d.target, grantee)
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("%s: %w", q, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return found, nil, fmt.Errorf("store: repair the privileges of role %s: %w", AppRole, err)
	}
	if held, err = s.readPrivileges(ctx); err != nil {
		return found, nil, err
	}
	return found, privilegeDrift(decl, held), nil
}

// privilegeList is privileges as GRANT and REVOKE list them, each of column when
// there is one.
func privilegeList(privileges []string, column string) string {
	if column == "" {
		return strings.Join(privileges, ", ")
	}
	out := make([]string, len(privileges))
	for i, p := range privileges {
		out[i] = p + " (" + column + ")"
	}
	return strings.Join(out, ", ")
}

// String says what d's grantee holds beyond the declaration and lacks of it:
// "table api_keys: segments_app holds INSERT, UPDATE, DELETE beyond what is declared
// (none)".
func (d PrivilegeDrift) String() string {
	declared := "none"
	if len(d.Declared) > 0 {
		declared = strings.Join(d.Declared, ", ")
	}
	extra, missing := strings.Join(d.Extra, ", "), strings.Join(d.Missing, ", ")
	switch {
	case len(d.Missing) == 0:
		return fmt.Sprintf("%s: %s holds %s beyond what is declared (%s)", d.Object, d.Grantee, extra, declared)
	case len(d.Extra) == 0:
		return fmt.Sprintf("%s: %s lacks %s of what is declared (%s)", d.Object, d.Grantee, missing, declared)
	}
	return fmt.Sprintf("%s: %s holds %s beyond, and lacks %s of, what is declared (%s)", d.Object, d.Grantee, extra, missing, declared)
}

// describePrivileges is drift for a log: each on its own, separated by "; ".
func describePrivileges(drift []PrivilegeDrift) string {
	out := make([]string, len(drift))
	for i, d := range drift {
		out[i] = d.String()
	}
	return strings.Join(out, "; ")
}
