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
//
// Around the objects, roleDeclared says what else the role may hold, and
// CheckPrivileges compares that too: its attributes (SUPERUSER or BYPASSRLS, and
// row-level security holds it back no more), the roles it is a member of
// (pg_write_all_data, or the tables' owner: their privileges, or theirs to take on
// with SET ROLE), grant options (it could grant what it holds to any role), CREATE
// on the schema or the database (objects of its own in the owner's search path, run
// as the owner), and default privileges, which give it every table made later.

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

	// Declared in roleDeclared, for whatever schema, database or role they are.
	kindSchema     = "schema"     // the schema the tables are in (current_schema())
	kindDatabase   = "database"   // the database (current_database())
	kindRole       = "role"       // AppRole's own attributes
	kindMembership = "membership" // a role AppRole is a member of
	kindDefault    = "default privileges"
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

// declaredAround is what the server's role and PUBLIC hold on an object of a kind
// roleDeclared declares, whatever its name: app and public as declaredPrivileges
// says, appMay and publicMay what each may hold or not (neither extra nor missing).
type declaredAround struct {
	kind                           string
	app, public, appMay, publicMay string
}

// roleDeclared is what the server's role and PUBLIC hold beyond the schema's objects,
// by kind. The role uses the schema (USAGE) and makes nothing in it: CREATE on the
// schema or the database would let it make a schema, function or operator that the
// owner's unqualified names resolve to (the owner's search path starts with
// "$user"), and run its code as the owner. It connects (CONNECT, its own or
// PUBLIC's); it makes no temporary table (no statement of the store does), so
// TEMPORARY is PUBLIC's alone, as PostgreSQL gives it, for the operator's roles. It
// has no attribute (LOGIN aside: AppURL gives it one) and is a member of no role,
// and no default privileges give it or PUBLIC anything beyond PostgreSQL's own
// (PUBLIC's EXECUTE of functions): each table's privileges are declared above.
var roleDeclared = []declaredAround{
	{kind: kindSchema, app: "USAGE", publicMay: "USAGE"},
	{kind: kindDatabase, appMay: "CONNECT", publicMay: "CONNECT, TEMPORARY"},
	{kind: kindRole},
	{kind: kindMembership},
	{kind: kindDefault},
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
	// The feed of memberships (20261217000001): appended to by the memberships'
	// triggers and pruned by them, both run as the server's role, and read by the
	// feed; never updated (the restore's repair runs as the owner).
	{kindTable, "membership_changes", "SELECT, INSERT, DELETE", privNone},
	// Its workspaces' budgets (20261218000003): counted, and their pruned places
	// written, by the same triggers as the server's role, and read by the feed; the
	// budget in force, which serve writes as the owner.
	{kindTable, "membership_changes_budgets", "SELECT, INSERT, UPDATE", privNone},
	{kindTable, "membership_changes_settings", privRead, privNone},
	// The API reads its own workspace; workspaces and keys are the administrative
	// commands' to make and manage, and a key is found by its hash through
	// segments_authenticate_key.
	{kindTable, "workspaces", privRead, privNone},
	// The workspaces being deleted (20261216000004), which the policy of workspaces
	// reads as the role that reads them; the administrative commands write them.
	{kindTable, "workspace_deletions", privRead, privNone},
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
	{kindSeq, "membership_changes_id_seq", privNone, privNone},
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
	{kindFunc, "memberships_feed_recorded()", privNone, privCall},
	{kindFunc, "memberships_feed_truncated()", privNone, privCall},
	// Run as their caller, by the feed's trigger (20261218000003).
	{kindFunc, "membership_changes_pruned(bigint)", privNone, privCall},
}

// PrivilegeDrift is one object of the schema on which the server's role (AppRole), or
// PUBLIC, holds other privileges than declared.
type PrivilegeDrift struct {
	// Object is the object, as "table api_keys", "sequence api_keys_id_seq", "function
	// segments_authenticate_key(bytea, bigint)", "column api_keys.key_hash", "schema
	// public", "database segments", "role segments_app" (its attributes), "role
	// pg_write_all_data" (a membership) or "default privileges of role segments on
	// tables".
	Object string
	// Grantee is AppRole or "PUBLIC" (AppRole alone for a role).
	Grantee string
	// Extra are the privileges it holds beyond the declaration, Missing those declared
	// that it lacks, in PostgreSQL's words.
	Extra, Missing []string
	// Grantable are privileges it holds as declared, but WITH GRANT OPTION, which is
	// never declared (it could grant them to any role).
	Grantable []string
	// Declared is what it is meant to hold, as Extra and Missing are.
	Declared []string

	// kind is the object's (kindTable...), which says how to repair it.
	kind string
	// may is what it may hold beyond Declared.
	may []string
	// target is what GRANT and REVOKE name: "TABLE public.x", "ROLE pg_write_all_data",
	// or for default privileges "FOR ROLE x IN SCHEMA y"; column "col" for a column's,
	// objects "TABLES" for default privileges.
	target, column, objects string
	// owner is the role a REVOKE by the object's owner or a superuser acts as (the
	// object's owner, or the role whose default privileges they are; none for a role),
	// as a quoted identifier. Such a REVOKE takes back only the grants owner made.
	owner string
	// ownerExtra and ownerGrantable are those of Extra and Grantable that such a
	// REVOKE takes back: not granted by other roles alone.
	ownerExtra, ownerGrantable []string
	// others are the grants of Extra and Grantable made by other roles, by grantor.
	others []otherGrant
}

// otherGrant is what one role other than the object's owner granted, of a
// PrivilegeDrift's Extra and Grantable: only a REVOKE run as that role takes it back
// (PostgreSQL runs an owner's or a superuser's as the owner, and before PostgreSQL 19
// GRANTED BY names no role but the current one), so its statements SET ROLE to it,
// which a superuser or a member of it may.
type otherGrant struct {
	// role is the grantor, as a quoted identifier.
	role string
	// may is whether the role that read the privileges is a member of role (a
	// superuser is of every role): whether a repair by it may SET ROLE to it.
	may              bool
	extra, grantable []string
}

// heldPrivileges is a row of heldPrivilegesSQL.
type heldPrivileges struct {
	Kind   string   `bun:"kind"`
	Name   string   `bun:"name"`
	Target string   `bun:"target"`
	Column string   `bun:"col"`
	App    []string `bun:"app,array"`
	Public []string `bun:"public,array"`
	// AppGrantable are those of App it holds WITH GRANT OPTION (or, for a
	// membership, WITH ADMIN OPTION).
	AppGrantable []string `bun:"app_grantable,array"`
	// Owner is the role a REVOKE by the owner or a superuser acts as (PrivilegeDrift's
	// owner).
	Owner string `bun:"owner"`
	// AppGrants and PublicGrants are AppRole's and PUBLIC's ACL items, one a grantor
	// and privilege: "INSERT f t grantor_x" is INSERT, not grantable (f), granted by
	// grantor_x, whom the reading role may act for (pg_has_role). None for a role's
	// attributes and memberships.
	AppGrants    []string `bun:"app_grants,array"`
	PublicGrants []string `bun:"public_grants,array"`
}

// heldPrivilegesSQL lists every relation and function of the schema (not those of an
// extension) and every column granted to anyone, with what AppRole (the argument) and
// PUBLIC hold on each, from their ACLs: NULL, an object no GRANT or REVOKE changed,
// holds PostgreSQL's defaults (acldefault: PUBLIC may EXECUTE a function). With them,
// the owner and each ACL item's grantor: a grant made by another role than the owner
// only that role's REVOKE takes back.
const heldPrivilegesSQL = `
	WITH objects AS (
		SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind, c.relname::text AS name,
		       format('%s %I.%I', CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname) AS target,
		       '' AS col,
		       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl,
		       c.relowner AS owner
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
		  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		UNION ALL
		SELECT 'column', c.relname || '.' || a.attname, format('TABLE %I.%I', n.nspname, c.relname), quote_ident(a.attname), a.attacl, c.relowner
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT 'function', p.proname || '(' || oidvectortypes(p.proargtypes) || ')', 'ROUTINE ' || p.oid::regprocedure::text, '',
		       coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = current_schema()
		  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
	)
	SELECT o.kind, o.name, o.target, o.col,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = r.oid), '{}') AS app,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = 0), '{}') AS public,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = r.oid AND a.is_grantable), '{}') AS app_grantable,
	       o.owner::regrole::text AS owner,
	       ` + aclGrantsSQL + `
	FROM objects o
	LEFT JOIN LATERAL aclexplode(o.acl) a ON true
	LEFT JOIN pg_roles r ON r.rolname = ?
	GROUP BY 1, 2, 3, 4, o.owner
	ORDER BY 1, 2`

// aclGrantsSQL selects, from the ACL items a of role r, app_grants and
// public_grants (heldPrivileges' AppGrants and PublicGrants).
const aclGrantsSQL = `
	       coalesce(array_agg(DISTINCT format('%s %s %s %s', a.privilege_type, a.is_grantable, pg_has_role(a.grantor, 'MEMBER'), a.grantor::regrole))
	                FILTER (WHERE a.grantee = r.oid), '{}') AS app_grants,
	       coalesce(array_agg(DISTINCT format('%s %s %s %s', a.privilege_type, a.is_grantable, pg_has_role(a.grantor, 'MEMBER'), a.grantor::regrole))
	                FILTER (WHERE a.grantee = 0), '{}') AS public_grants`

// roleHeldSQL lists, as heldPrivilegesSQL does, what AppRole (the argument) and PUBLIC
// hold around the schema's objects: on the schema and the database; the role's
// attributes (of SUPERUSER, CREATEDB, CREATEROLE, REPLICATION and BYPASSRLS: LOGIN
// and INHERIT are its to have); each role it is a member of (MEMBER, grantable with
// the admin option; on PostgreSQL 16 whatever its INHERIT and SET options: with
// ADMIN alone it can grant itself the role); and the default privileges of any role, for
// this schema or all, less what PostgreSQL gives without them (acldefault: PUBLIC's
// EXECUTE of functions and USAGE of types).
const roleHeldSQL = `
	WITH app AS (SELECT * FROM pg_roles WHERE rolname = ?),
	acls AS (
		SELECT 'schema' AS kind, n.nspname::text AS name, format('SCHEMA %I', n.nspname) AS target, '' AS col,
		       coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl, NULL::aclitem[] AS given, n.nspowner AS owner
		FROM pg_namespace n WHERE n.nspname = current_schema()
		UNION ALL
		SELECT 'database', d.datname::text, format('DATABASE %I', d.datname), '',
		       coalesce(d.datacl, acldefault('d', d.datdba)), NULL, d.datdba
		FROM pg_database d WHERE d.datname = current_database()
		UNION ALL
		SELECT 'default privileges',
		       format('of role %s%s on %s', d.defaclrole::regrole, CASE WHEN n.oid IS NULL THEN '' ELSE format(' in schema %I', n.nspname) END, lower(o.objects)),
		       format('FOR ROLE %s%s', d.defaclrole::regrole, CASE WHEN n.oid IS NULL THEN '' ELSE format(' IN SCHEMA %I', n.nspname) END),
		       o.objects, d.defaclacl,
		       -- acldefault's 'S' is a foreign server's; pg_default_acl's a sequence's
		       acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END, d.defaclrole), d.defaclrole
		FROM pg_default_acl d
		LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
		CROSS JOIN LATERAL (SELECT CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
		                                WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END AS objects) o
		WHERE d.defaclnamespace = 0 OR n.nspname = current_schema()
	)
	SELECT o.kind, o.name, o.target, o.col,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = r.oid), '{}') AS app,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = 0 AND NOT EXISTS (
	           SELECT FROM aclexplode(o.given) g WHERE g.grantee = 0 AND g.privilege_type = a.privilege_type)), '{}') AS public,
	       coalesce(array_agg(DISTINCT a.privilege_type) FILTER (WHERE a.grantee = r.oid AND a.is_grantable), '{}') AS app_grantable,
	       o.owner::regrole::text AS owner,
	       ` + aclGrantsSQL + `
	FROM acls o
	LEFT JOIN LATERAL aclexplode(o.acl) a ON true
	LEFT JOIN app r ON true
	GROUP BY 1, 2, 3, 4, o.owner
	UNION ALL
	SELECT 'role', app.rolname::text, format('%I', app.rolname), '',
	       array_remove(ARRAY[CASE WHEN app.rolsuper THEN 'SUPERUSER' END, CASE WHEN app.rolcreatedb THEN 'CREATEDB' END,
	                          CASE WHEN app.rolcreaterole THEN 'CREATEROLE' END, CASE WHEN app.rolreplication THEN 'REPLICATION' END,
	                          CASE WHEN app.rolbypassrls THEN 'BYPASSRLS' END], NULL),
	       '{}', '{}', '', '{}', '{}'
	FROM app
	UNION ALL
	SELECT 'membership', g.rolname::text, format('%I', g.rolname), '', '{MEMBER}', '{}',
	       CASE WHEN bool_or(m.admin_option) THEN '{MEMBER}' ELSE '{}' END::text[], '', '{}', '{}'
	FROM app JOIN pg_auth_members m ON m.member = app.oid JOIN pg_roles g ON g.oid = m.roleid
	GROUP BY g.rolname
	ORDER BY 1, 2`

// privilegeOrder is the order privileges are listed in: GRANT's, then the
// database's and the role's.
var privilegeOrder = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "EXECUTE",
	"CREATE", "CONNECT", "TEMPORARY", "SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS", "MEMBER"}

func sortPrivileges(p []string) {
	slices.SortFunc(p, func(a, b string) int {
		ia, ib := slices.Index(privilegeOrder, a), slices.Index(privilegeOrder, b)
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
}

// privilegeDrift compares what is held with decl, and with roleDeclared for the
// kinds it declares. An object decl does not name is left out (a table of the
// operator's, or of a newer version's migration): its privileges are not this
// binary's to judge. A column of a table decl names holds nothing of either grantee.
func privilegeDrift(decl []declaredPrivileges, held []heldPrivileges) []PrivilegeDrift {
	declared := map[string]declaredPrivileges{}
	for _, d := range decl {
		declared[d.kind+" "+d.name] = d
	}
	byKind := map[string]declaredAround{}
	for _, d := range roleDeclared {
		byKind[d.kind] = d
	}
	var drift []PrivilegeDrift
	for _, h := range held {
		d, ok := byKind[h.Kind]
		if !ok {
			var o declaredPrivileges
			if h.Kind == kindColumn {
				table, _, _ := strings.Cut(h.Name, ".")
				_, ok = declared[kindTable+" "+table]
			} else {
				o, ok = declared[h.Kind+" "+h.Name]
			}
			d = declaredAround{kind: o.kind, app: o.app, public: o.public}
		}
		if !ok {
			continue
		}
		for _, g := range []struct {
			grantee                 string
			held, grantable, grants []string
			declared, may           []string
		}{
			{AppRole, h.App, h.AppGrantable, h.AppGrants, splitPrivileges(d.app), splitPrivileges(d.appMay)},
			{"PUBLIC", h.Public, nil, h.PublicGrants, splitPrivileges(d.public), splitPrivileges(d.publicMay)},
		} {
			pd := PrivilegeDrift{Object: h.Kind + " " + h.Name, Grantee: g.grantee, Declared: g.declared,
				kind: h.Kind, may: g.may, target: h.Target, owner: h.Owner}
			if h.Kind == kindMembership {
				pd.Object = kindRole + " " + h.Name
			}
			if h.Kind == kindDefault {
				pd.objects = h.Column
			} else {
				pd.column = h.Column
			}
			for _, p := range g.held {
				if !slices.Contains(g.declared, p) && !slices.Contains(g.may, p) {
					pd.Extra = append(pd.Extra, p)
				}
			}
			for _, p := range g.declared {
				if !slices.Contains(g.held, p) {
					pd.Missing = append(pd.Missing, p)
				}
			}
			// An extra privilege's REVOKE takes its grant option with it; a
			// membership's admin option is said with it.
			for _, p := range g.grantable {
				if !slices.Contains(pd.Extra, p) || h.Kind == kindMembership {
					pd.Grantable = append(pd.Grantable, p)
				}
			}
			if len(pd.Extra)+len(pd.Missing)+len(pd.Grantable) > 0 {
				sortPrivileges(pd.Extra)
				sortPrivileges(pd.Missing)
				sortPrivileges(pd.Grantable)
				pd.splitByGrantor(g.grants)
				drift = append(drift, pd)
			}
		}
	}
	return drift
}

// splitByGrantor sets d's ownerExtra, ownerGrantable and others from grants (the
// grantee's ACL items, as heldPrivileges' AppGrants): a privilege of Extra or
// Grantable that only other roles granted is theirs to take back, one that d's owner
// granted (or that no item names) the owner's.
func (d *PrivilegeDrift) splitByGrantor(grants []string) {
	byOwner, byOther := map[string]bool{}, map[string]bool{}
	for _, g := range grants {
		f := strings.SplitN(g, " ", 4)
		if len(f) < 4 {
			continue
		}
		p, grantable, may, role := f[0], f[1] == "t", f[2] == "t", f[3]
		extra := slices.Contains(d.Extra, p)
		option := !extra && grantable && slices.Contains(d.Grantable, p)
		key := p
		if option {
			key = "GRANT OPTION FOR " + p
		}
		if role == d.owner {
			byOwner[key] = true
			continue
		}
		if !extra && !option {
			continue
		}
		byOther[key] = true
		i := slices.IndexFunc(d.others, func(o otherGrant) bool { return o.role == role })
		if i < 0 {
			i = len(d.others)
			d.others = append(d.others, otherGrant{role: role, may: may})
		}
		if extra {
			d.others[i].extra = append(d.others[i].extra, p)
		} else {
			d.others[i].grantable = append(d.others[i].grantable, p)
		}
	}
	for _, p := range d.Extra {
		if byOwner[p] || !byOther[p] {
			d.ownerExtra = append(d.ownerExtra, p)
		}
	}
	for _, p := range d.Grantable {
		if key := "GRANT OPTION FOR " + p; byOwner[key] || !byOther[key] {
			d.ownerGrantable = append(d.ownerGrantable, p)
		}
	}
	slices.SortFunc(d.others, func(a, b otherGrant) int { return strings.Compare(a.role, b.role) })
	for _, o := range d.others {
		sortPrivileges(o.extra)
		sortPrivileges(o.grantable)
	}
}

// without is d less what l (what is left of the same object and grantee) still
// holds or lacks: what a repair changed. It reports whether anything is left of d.
func (d PrivilegeDrift) without(l PrivilegeDrift) (PrivilegeDrift, bool) {
	minus := func(a, b []string) []string {
		var out []string
		for _, p := range a {
			if !slices.Contains(b, p) {
				out = append(out, p)
			}
		}
		return out
	}
	d.Extra, d.Missing, d.Grantable = minus(d.Extra, l.Extra), minus(d.Missing, l.Missing), minus(d.Grantable, l.Grantable)
	d.ownerExtra, d.ownerGrantable = minus(d.ownerExtra, l.Extra), minus(d.ownerGrantable, l.Grantable)
	var others []otherGrant
	for _, o := range d.others {
		o.extra, o.grantable = minus(o.extra, l.Extra), minus(o.grantable, l.Grantable)
		if len(o.extra)+len(o.grantable) > 0 {
			others = append(others, o)
		}
	}
	d.others = others
	return d, len(d.Extra)+len(d.Missing)+len(d.Grantable) > 0
}

// changedPrivileges is what found, the drift before a repair, lost by it, given left,
// the drift after it: each found less what is left of it, those of which anything
// changed.
func changedPrivileges(found, left []PrivilegeDrift) []PrivilegeDrift {
	var out []PrivilegeDrift
	for _, f := range found {
		i := slices.IndexFunc(left, func(l PrivilegeDrift) bool { return l.Object == f.Object && l.Grantee == f.Grantee })
		if i < 0 {
			out = append(out, f)
		} else if c, ok := f.without(left[i]); ok {
			out = append(out, c)
		}
	}
	return out
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

// readAllPrivileges reads what AppRole and PUBLIC hold on the schema's objects and
// around them (roleHeldSQL): two statements.
func (s *Store) readAllPrivileges(ctx context.Context) ([]heldPrivileges, error) {
	held, err := s.readPrivileges(ctx)
	if err != nil {
		return nil, err
	}
	var role []heldPrivileges
	if err := s.db.NewRaw(roleHeldSQL, AppRole).Scan(ctx, &role); err != nil {
		return nil, fmt.Errorf("store: read the attributes, memberships and privileges of role %s: %w", AppRole, err)
	}
	return append(held, role...), nil
}

// CheckPrivileges returns each table, sequence, column and function of the schema on
// which the server's role (AppRole) or PUBLIC holds other privileges than the
// migrations grant (appPrivileges), by object, then what else either holds beyond
// roleDeclared: on the schema or the database, the role's attributes and
// memberships, and default privileges. It only reads.
func (s *Store) CheckPrivileges(ctx context.Context) ([]PrivilegeDrift, error) {
	held, err := s.readAllPrivileges(ctx)
	if err != nil {
		return nil, err
	}
	return privilegeDrift(appPrivileges, held), nil
}

// RepairPrivileges makes the privileges of the server's role and PUBLIC what the
// migrations grant, as Migrate does after every run, holding the migrations' lock (two
// sessions granting on one object at once can fail), and returns what it changed
// (repaired: what it found less what is left), and what is still held or lacking
// after it (left): what the migrating role may not change. A privilege another role
// granted it revokes as that role (SET ROLE), which it may only as a superuser or a
// member of that role; SUPERUSER, BYPASSRLS and REPLICATION take a superuser; a
// membership, the admin option or CREATEROLE; another role's default privileges,
// that role. It is safe while the server runs: it takes from the role
// only what the server never uses, and GRANT and REVOKE wait for no lock on the
// tables.
func (s *Store) RepairPrivileges(ctx context.Context) (repaired, left []PrivilegeDrift, err error) {
	err = s.holding(ctx, "migrations", "?", migrationLockKey, func(bun.Tx) error {
		repaired, left, err = s.enforcePrivileges(ctx, appPrivileges)
		return err
	})
	return repaired, left, err
}

// enforcePrivileges revokes from AppRole and PUBLIC what they hold beyond decl and
// roleDeclared, and grants them what they lack, in one transaction, and returns what
// it changed (the drift it found less what is left, changedPrivileges) and the drift
// left after. A statement the migrating role may not run (insufficient privilege) is
// skipped: what it would have changed is left. The caller holds the migrations'
// lock.
func (s *Store) enforcePrivileges(ctx context.Context, decl []declaredPrivileges) (changed, left []PrivilegeDrift, err error) {
	held, err := s.readAllPrivileges(ctx)
	if err != nil {
		return nil, nil, err
	}
	found := privilegeDrift(decl, held)
	if len(found) == 0 {
		return nil, nil, nil
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, d := range found {
			for _, q := range d.statements() {
				if _, err := tx.ExecContext(ctx, "SAVEPOINT privilege"); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, q); err != nil {
					if pgErr := pgError(err); pgErr == nil || pgErr.Code != insufficientPrivilege {
						return fmt.Errorf("%s: %w", q, err)
					}
					if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT privilege"); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: repair the privileges of role %s: %w", AppRole, err)
	}
	if held, err = s.readAllPrivileges(ctx); err != nil {
		return nil, nil, err
	}
	left = privilegeDrift(decl, held)
	return changedPrivileges(found, left), left, nil
}

// statements are what repair d: revoke what is extra (with CASCADE, the grants the
// role made from a grant option go with it) and grant options, and grant what is
// missing. The role's attributes go one ALTER ROLE each, SUPERUSER first (a
// superuser's other attributes only a superuser may change). What another role than
// the owner granted is revoked as that role, in one statement each: SET ROLE to it,
// REVOKE, RESET ROLE. A superuser's or the owner's REVOKE would take back only the
// owner's grants, and report success; before PostgreSQL 19, REVOKE's GRANTED BY may
// name no other role than the current one.
func (d PrivilegeDrift) statements() []string {
	grantee := "PUBLIC"
	if d.Grantee == AppRole {
		grantee = AppRole // a constant: no quoting needed
	}
	var out []string
	switch d.kind {
	case kindRole:
		for _, a := range d.Extra {
			out = append(out, fmt.Sprintf("ALTER ROLE %s NO%s", d.target, a))
		}
		return out
	case kindMembership:
		return []string{fmt.Sprintf("REVOKE %s FROM %s CASCADE", d.target, grantee)}
	}
	revoke := func(privileges string) string {
		if d.kind == kindDefault {
			return fmt.Sprintf("ALTER DEFAULT PRIVILEGES %s REVOKE %s ON %s FROM %s CASCADE", d.target, privileges, d.objects, grantee)
		}
		return fmt.Sprintf("REVOKE %s ON %s FROM %s CASCADE", privileges, d.target, grantee)
	}
	if len(d.ownerExtra) > 0 {
		out = append(out, revoke(privilegeList(d.ownerExtra, d.column)))
	}
	if len(d.ownerGrantable) > 0 {
		out = append(out, revoke("GRANT OPTION FOR "+privilegeList(d.ownerGrantable, d.column)))
	}
	for _, o := range d.others {
		q := []string{"SET ROLE " + o.role}
		if len(o.extra) > 0 {
			q = append(q, revoke(privilegeList(o.extra, d.column)))
		}
		if len(o.grantable) > 0 {
			q = append(q, revoke("GRANT OPTION FOR "+privilegeList(o.grantable, d.column)))
		}
		out = append(out, strings.Join(append(q, "RESET ROLE"), "; "))
	}
	if len(d.Missing) > 0 {
		out = append(out, fmt.Sprintf("GRANT %s ON %s TO %s", privilegeList(d.Missing, d.column), d.target, grantee))
	}
	return out
}

// Fix is the SQL that repairs d, as RepairPrivileges runs it, for a role that may
// (RunBy): what to have it run when the repair left d.
func (d PrivilegeDrift) Fix() string {
	return strings.Join(d.statements(), "; ")
}

// Grantors are the roles, other than the object's owner, that granted some of what
// d's grantee holds beyond the declaration: Fix takes it back as each (SET ROLE).
func (d PrivilegeDrift) Grantors() []string {
	out := make([]string, len(d.others))
	for i, o := range d.others {
		out[i] = o.role
	}
	return out
}

// Repairable reports whether the role that read d may take back what each of its
// Grantors granted (it is a superuser, or a member of each): if not, a repair as it
// leaves that. It says nothing of the rest (an attribute only a superuser may
// change).
func (d PrivilegeDrift) Repairable() bool {
	return !slices.ContainsFunc(d.others, func(o otherGrant) bool { return !o.may })
}

// RunBy says who may run Fix: "a superuser, or a member of role grantor_x" when
// other roles granted some of d, else "a superuser" (or, of what is the owner's to
// change, the owner: "a superuser, or role segments").
func (d PrivilegeDrift) RunBy() string {
	switch {
	case len(d.others) > 0:
		return "a superuser, or a member of role " + strings.Join(d.Grantors(), " and of role ")
	case d.owner != "" && len(d.Extra)+len(d.Missing)+len(d.Grantable) > 0:
		return "a superuser, or role " + d.owner
	}
	return "a superuser"
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
// (none)", "role pg_write_all_data: segments_app is a member, which is never
// declared", "role segments_app: segments_app holds BYPASSRLS beyond what is declared
// (none)".
func (d PrivilegeDrift) String() string {
	if d.kind == kindMembership {
		admin := ""
		if len(d.Grantable) > 0 {
			admin = " with the admin option"
		}
		return fmt.Sprintf("%s: %s is a member%s, which is never declared", d.Object, d.Grantee, admin)
	}
	declared := "none"
	if len(d.Declared) > 0 {
		declared = strings.Join(d.Declared, ", ")
	}
	if len(d.may) > 0 {
		declared = strings.Join(append(slices.Clone(d.Declared), d.may...), ", ") + " at most"
	}
	extra, missing := strings.Join(d.Extra, ", "), strings.Join(d.Missing, ", ")
	var out string
	switch {
	case len(d.Extra)+len(d.Missing) == 0:
	case len(d.Missing) == 0:
		out = fmt.Sprintf("%s: %s holds %s beyond what is declared (%s)", d.Object, d.Grantee, extra, declared)
	case len(d.Extra) == 0:
		out = fmt.Sprintf("%s: %s lacks %s of what is declared (%s)", d.Object, d.Grantee, missing, declared)
	default:
		out = fmt.Sprintf("%s: %s holds %s beyond, and lacks %s of, what is declared (%s)", d.Object, d.Grantee, extra, missing, declared)
	}
	if len(d.Grantable) > 0 {
		grantable := strings.Join(d.Grantable, ", ")
		if out == "" {
			out = fmt.Sprintf("%s: %s holds %s with grant option, which is never declared", d.Object, d.Grantee, grantable)
		} else {
			out = fmt.Sprintf("%s, and %s with grant option, which is never declared", out, grantable)
		}
	}
	return out + d.grantedBy()
}

// grantedBy says which roles other than the owner granted what of d:
// ", granted by role grantor_x" when they granted all that is extra, else each's:
// ", INSERT granted by role grantor_x, SELECT by role y".
func (d PrivilegeDrift) grantedBy() string {
	if len(d.others) == 1 && len(d.ownerExtra)+len(d.ownerGrantable) == 0 {
		return ", granted by role " + d.others[0].role
	}
	var by []string
	for i, o := range d.others {
		p := strings.Join(append(slices.Clone(o.extra), o.grantable...), ", ")
		if i == 0 {
			by = append(by, p+" granted by role "+o.role)
		} else {
			by = append(by, p+" by role "+o.role)
		}
	}
	if len(by) == 0 {
		return ""
	}
	return ", " + strings.Join(by, ", ")
}

// describePrivileges is drift for a log: each on its own, separated by "; ".
func describePrivileges(drift []PrivilegeDrift) string {
	out := make([]string, len(drift))
	for i, d := range drift {
		out[i] = d.String()
	}
	return strings.Join(out, "; ")
}
