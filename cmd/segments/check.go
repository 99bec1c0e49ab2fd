package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/telemetry"
)

// checkHelp describes the check command for "segments help check".
const checkHelp = `segments check [--repair] compares every segment's contact count and audience
bitmaps, in all workspaces, with the memberships they are derived from, and every
workspace's contact count with its contacts, and looks for memberships of contacts
or segments that do not exist. It prints one line per segment or workspace whose
count or bitmaps have drifted or that has such memberships, and a summary, and exits
with status 3 when it found any. It also reports a trigger that maintains them and
is missing or disabled (status 3 too: they would drift again), and a workspace whose
contacts carry transaction IDs this database has not run yet (status 3: a dump
restored into a new cluster; contactChanges omits them until they are stamped again,
as --repair and every command that migrates, serve too, do, refusing the cursors
made before: the mirrors must sync again from after: null), and the membership
changes of workspaces that no longer exist, which a server of a version before
20261217000001_membership_changes leaves when it deletes a workspace (status 3; every command that
migrates deletes up to 100,000 of them as it opens the database). It looks for segment
names and descriptions and contact names and emails that are not composed (Unicode
NFC), as a server of a version before 20261206000003_compose_texts still writes
them during a rolling upgrade, and which search misses: one line per segment and
one per workspace for its contacts (status 3 too), and each table, sequence,
column or function on which the server's role (segments_app), or PUBLIC, holds
other privileges than the migrations grant, one line each (status 3 too:
pg_restore --clean into a database migrated before 20261213000001 gave that role
every table; every command that migrates makes them so again), and around them
what that role must not have: an attribute (SUPERUSER, BYPASSRLS, CREATEDB,
CREATEROLE, REPLICATION), membership in any role, a grant option, CREATE on the
schema or the database, default privileges for it or PUBLIC. It reports each
built-in function the migrations declare leakproof (textcat, texticlike, textlike,
lower, jsonb_contains, jsonb_exists) that is not, one line each (status 3 too: a dump
restored into a new database, or pg_upgrade, drops the declarations, and under
row-level security the server's searches and attribute conditions then read every
contact of the workspace; every command that migrates as a superuser declares them
again); run as a role that is no superuser, it warns of them on stderr instead, with
the SQL for a superuser (the exit status does not change: on a managed PostgreSQL no
role may be one). It warns, on stderr, of PostgreSQL settings that leave the database
unsafe, such as an unlimited temp_file_limit (the exit status does not change: a
superuser sets them), and of each transaction of the cluster, in any database,
older than --old-transaction-age (1m) that holds every workspace's change feed back
(the exit status does not change either: it is no damage, and the feed catches up
once it ends).
It never migrates the database: one that lacks migrations this binary has (segments
migrate --status lists them), or has migrations it does not know, is refused,
naming them, unchecked (exit status 1).

  --repair   delete memberships of missing contacts or segments (leaving counts
             and bitmaps as they were), set each drifted count to the real number
             of memberships or contacts and rebuild each drifted segment's bitmaps,
             in one transaction each, and compose texts that are not, moving
             their updated_at, and stamp again the contacts and deletions
             whose transaction IDs are ahead, delete the membership changes
             of workspaces that no longer exist, and revoke from the server's role
             (and PUBLIC) what is not granted by the migrations and grant what
             is, and declare leakproof again the functions that are not
             (a superuser only); it reports what it found, as a check would have,
             and exits 0; safe while the server runs and writes. What the role
             it runs as may not change (SUPERUSER, BYPASSRLS and REPLICATION
             take a superuser; a privilege another role
             granted, a superuser or a member of that role) is reported "not
             repaired" (exit status 3), with the SQL to run and who may run it. A segment name
             whose composed form is another segment's name is left as it is,
             reported "not repaired" (exit status 3): rename one of the two, then
             run it again

`

// errDrift is the outcome of a check that found something to repair (exit code 3).
var errDrift = errors.New("the database is inconsistent")

func check(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var repair bool
	cfg, rest, err := parse("check", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		fs.BoolVar(&repair, "repair", false, "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("check", rest); err != nil {
		return err
	}
	// It never migrates: run before an upgrade's migrate, a check that did would
	// leave the servers of the version before refusing to start (or stop) beside it.
	return withDatabase(ctx, cfg, stderr, "segments-check", false, func(s *store.Store, log *slog.Logger) error {
		if err := s.CheckSchema(ctx); err != nil {
			return fmt.Errorf("%w; check does not migrate, and checks only a database this binary's migrations are all applied to", err)
		}
		warnSettings(ctx, s, log)
		warnHeldFeed(ctx, s, log, cfg.oldTransaction)
		return checkStore(ctx, s, repair, stdout, log)
	})
}

// warnHeldFeed warns, as serve logs them, of the transactions of the cluster older
// than age that hold the change feed back (store.HeldTransactions). A warning, not
// drift (the exit status does not change): nothing is damaged, --repair cannot end
// them, and the feed catches up once they end. A transaction whose age the role may
// not see (it lacks pg_read_all_stats) is left out: one look cannot tell its age.
func warnHeldFeed(ctx context.Context, s *store.Store, log *slog.Logger, age time.Duration) {
	if age <= 0 {
		return
	}
	held, err := s.HeldTransactions(ctx)
	if err != nil {
		log.Warn("could not read PostgreSQL's running transactions", "err", err)
		return
	}
	for _, t := range held {
		if t.Visible && t.Age >= age {
			log.Warn("a transaction holds every workspace's change feed back", telemetry.HeldTransactionAttrs(t, t.Age)...)
		}
	}
}

// checkStore does what check does, on s: reports (or repairs) drift, broken
// triggers, the server role's privileges and the functions the migrations declare
// leakproof.
func checkStore(ctx context.Context, s *store.Store, repair bool, stdout io.Writer, log *slog.Logger) error {
	brokenTriggers, err := s.TriggerProblems(ctx)
	if err != nil {
		return err
	}
	for _, p := range brokenTriggers {
		fmt.Fprintf(stdout, "broken: %s; counts, bitmaps, memberships' references or the change feed go wrong with every change\n", p)
	}
	// What is broken, counted by kind, so that the error's one line says which kinds
	// the lines above are.
	var brokenPrivileges, brokenLeakproof, brokenAhead int
	var privileges, unrepaired []store.PrivilegeDrift
	if repair {
		privileges, unrepaired, err = s.RepairPrivileges(ctx)
	} else {
		privileges, err = s.CheckPrivileges(ctx)
	}
	if err != nil {
		return err
	}
	// A repair returns what it changed (privileges) and what is left (unrepaired): a
	// line says "repaired" only of what it changed.
	for _, d := range privileges {
		switch {
		case repair:
			fmt.Fprintf(stdout, "repaired: %s\n", d)
			continue
		case d.Repairable():
			fmt.Fprintf(stdout, "broken: %s; \"segments check --repair\" (or migrate) repairs it\n", d)
		default:
			// Granted by a role this one may not act for: a repair run as it would
			// leave it, and a superuser's plain REVOKE would take back nothing.
			fmt.Fprintf(stdout, "broken: %s; the role this runs as may not revoke as %s, so \"segments check --repair\" (or migrate) leaves it: have %s run: %s\n",
				d, strings.Join(d.Grantors(), " or "), d.RunBy(), d.Fix())
		}
		brokenPrivileges++
	}
	for _, d := range unrepaired {
		brokenPrivileges++
		fmt.Fprintf(stdout, "not repaired: %s: the role this runs as may not change it; have %s run: %s\n", d, d.RunBy(), d.Fix())
	}
	// The functions the migrations declare leakproof: a restore into a new database
	// drops the declarations, and then searches and attribute conditions of the
	// server's role read the workspace's every contact.
	var leakproof, leakproofLeft []store.Leakproof
	if repair {
		leakproof, leakproofLeft, err = s.RepairLeakproof(ctx)
	} else {
		leakproof, err = s.CheckLeakproof(ctx)
	}
	if err != nil {
		return err
	}
	if len(leakproof) > 0 && !repair {
		// Only a superuser declares them: where this role is none (a managed
		// PostgreSQL may have no superuser at all), a warning with the SQL, as for
		// the settings a superuser sets (warnSettings), not a failure that no repair
		// of this role's can end.
		super, err := s.Superuser(ctx)
		if err != nil {
			return err
		}
		if !super {
			leakproof, leakproofLeft = nil, leakproof
		}
	}
	if len(leakproofLeft) > 0 {
		store.WarnLeakproofLeft(log, "checking", leakproofLeft)
	}
	for _, l := range leakproof {
		if repair {
			fmt.Fprintf(stdout, "repaired: %s: declared leakproof again\n", l)
			continue
		}
		brokenLeakproof++
		fmt.Fprintf(stdout, "broken: %s (a dump restored into a new database, or pg_upgrade, drops the declaration, and only a superuser makes it): under row-level security %s read every contact of the workspace; %s's \"segments check --repair\" (or migrate) declares it again\n",
			l, l.Serves, l.RunBy())
	}
	var ahead []store.ChangesAhead
	if repair {
		ahead, _, err = s.RepairChangesAhead(ctx)
	} else {
		ahead, err = s.CheckChangesAhead(ctx)
	}
	if err != nil {
		return err
	}
	for _, a := range ahead {
		if repair {
			fmt.Fprintf(stdout, "repaired: workspace %d %q: %d contact(s), %d deletion(s) and %d membership change(s) changed by transactions this database has not run (a restore into a new cluster) stamped again; contactChanges and membershipChanges cursors made before are refused: resync every mirror from after: null\n",
				a.WorkspaceID, a.WorkspaceName, a.Contacts, a.Deletions, a.MembershipChanges)
			continue
		}
		brokenAhead++
		fmt.Fprintf(stdout, "broken: workspace %d %q: contacts or memberships changed by transactions this database has not run (a restore into a new cluster), which contactChanges and membershipChanges omit; \"segments check --repair\" (or serve) stamps them again, voiding the cursors made before: then resync every mirror from after: null\n",
			a.WorkspaceID, a.WorkspaceName)
	}

	// The feed's rows of workspaces an older server deleted (every command that
	// migrates deletes some of them as it opens the database, a repair all).
	var gone []store.GoneWorkspaceChanges
	if repair {
		gone, _, err = s.PruneGoneWorkspaceChanges(ctx, 0)
	} else {
		gone, err = s.CheckGoneWorkspaceChanges(ctx)
	}
	if err != nil {
		return err
	}
	verb := "drift"
	if repair {
		verb = "repaired"
	}
	for _, g := range gone {
		fmt.Fprintf(stdout, "%s: workspace %d (deleted): %d membership change(s) of a workspace that no longer exists (an older server deleted it)\n",
			verb, g.WorkspaceID, g.Rows)
	}

	var orphans []store.Orphans
	var drift []store.CountDrift
	var bitmapDrift []store.BitmapDrift
	var contactDrift []store.ContactCountDrift
	var segmentTexts []store.SegmentTexts
	var contactTexts []store.ContactTexts
	if repair {
		// Orphans first: their deletion leaves the counters and bitmaps as they were
		// (whether an orphan was counted is unknowable), and the repairs after it
		// set those to the memberships that remain.
		orphans, err = s.RepairOrphans(ctx)
		if err == nil {
			drift, err = s.RepairCounts(ctx)
		}
		if err == nil {
			bitmapDrift, err = s.RepairBitmaps(ctx)
		}
		if err == nil {
			contactDrift, err = s.RepairContactCounts(ctx)
		}
		if err == nil {
			segmentTexts, contactTexts, err = s.RepairTexts(ctx)
		}
	} else {
		orphans, err = s.CheckOrphans(ctx)
		if err == nil {
			drift, err = s.CheckCounts(ctx)
		}
		if err == nil {
			bitmapDrift, err = s.CheckBitmaps(ctx)
		}
		if err == nil {
			contactDrift, err = s.CheckContactCounts(ctx)
		}
		if err == nil {
			segmentTexts, contactTexts, err = s.CheckTexts(ctx)
		}
	}
	if err != nil {
		return err
	}
	for _, o := range orphans {
		fmt.Fprintf(stdout, "%s: workspace %d %q: %d membership(s) of a contact or segment that does not exist\n",
			verb, o.WorkspaceID, o.WorkspaceName, o.Memberships)
	}
	for _, d := range drift {
		fmt.Fprintf(stdout, "%s: workspace %d %q, segment %s %q: contact_count %d, memberships %d (%+d)\n",
			verb, d.WorkspaceID, d.WorkspaceName, globalid.Encode(globalid.Segment, d.SegmentID), d.SegmentName,
			d.Stored, d.Actual, d.Stored-d.Actual)
	}
	for _, d := range bitmapDrift {
		fmt.Fprintf(stdout, "%s: workspace %d %q, segment %s %q: %d bitmap chunk(s) differ from the memberships\n",
			verb, d.WorkspaceID, d.WorkspaceName, globalid.Encode(globalid.Segment, d.SegmentID), d.SegmentName, d.Chunks)
	}

	for _, d := range contactDrift {
		fmt.Fprintf(stdout, "%s: workspace %d %q: contact count %d, contacts %d (%+d)\n",
			verb, d.WorkspaceID, d.WorkspaceName, d.Stored, d.Actual, d.Stored-d.Actual)
	}

	// A segment name whose composed form another segment has is left by a repair,
	// and said so, with what to do; the segment's description is composed all the
	// same, on a line of its own.
	taken := 0
	for _, t := range segmentTexts {
		seg := fmt.Sprintf("workspace %d %q, segment %s %+q: ", t.WorkspaceID, t.WorkspaceName,
			globalid.Encode(globalid.Segment, t.SegmentID), t.SegmentName)
		if t.TakenBy == 0 {
			fmt.Fprintf(stdout, "%s: %s%s not composed (Unicode NFC)\n", verb, seg, textsOf(t.Name, t.Description))
			continue
		}
		taken++
		v, texts := verb, textsOf(t.Name, t.Description)
		if repair {
			if t.Description {
				fmt.Fprintf(stdout, "%s: %sdescription not composed (Unicode NFC)\n", verb, seg)
			}
			v, texts = "not repaired", "name"
		}
		fmt.Fprintf(stdout, "%s: %s%s not composed (Unicode NFC), and segment %s %+q has its composed name: rename one of them\n",
			v, seg, texts, globalid.Encode(globalid.Segment, t.TakenBy), t.TakenByName)
	}
	var contacts int64
	for _, c := range contactTexts {
		contacts += c.Contacts
		fmt.Fprintf(stdout, "%s: workspace %d %q: %d contact(s) whose name or email is not composed (Unicode NFC)\n",
			verb, c.WorkspaceID, c.WorkspaceName, c.Contacts)
	}

	found := len(gone) + len(orphans) + len(drift) + len(bitmapDrift) + len(contactDrift) + len(segmentTexts) + len(contactTexts)
	what := fmt.Sprintf("%s, %s and %s", countersOf(len(drift)), bitmapsOf(len(bitmapDrift)), workspaceCountsOf(len(contactDrift)))
	if len(segmentTexts)+len(contactTexts) > 0 { // named only when there are some: only old servers write them
		what = fmt.Sprintf("%s, %s", uncomposedOf(len(segmentTexts), contacts), what)
	}
	if len(orphans) > 0 { // named only when there are some: they need triggers turned off to exist
		what = fmt.Sprintf("%s, %s", orphansOf(len(orphans)), what)
	}
	if len(gone) > 0 { // named only when there are some: only older servers leave them
		what = fmt.Sprintf("%s, %s", goneOf(len(gone)), what)
	}
	switch {
	case repair && taken > 0:
		fmt.Fprintf(stdout, "%s repaired, but %s: rename one of each pair, then repair again\n", what, takenOf(taken))
	case repair:
		fmt.Fprintf(stdout, "%s repaired\n", what)
	case found > 0:
		fmt.Fprintf(stdout, "%s drifted; run \"segments check --repair\" to repair\n", what)
	default:
		fmt.Fprintln(stdout, "no drift: every segment's contact_count and bitmaps equal its memberships, every workspace's contact count its contacts; every membership's contact and segment exist; every name, description and email is composed (NFC)")
	}
	var kinds []string
	for _, b := range []struct {
		n    int
		what string
	}{
		{len(brokenTriggers), "trigger(s) missing or disabled"},
		{brokenPrivileges, "privilege(s) of " + store.AppRole + " other than declared"},
		{brokenLeakproof, "function(s) not leakproof"},
		{brokenAhead, "workspace(s) with change IDs ahead"},
	} {
		if b.n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", b.n, b.what))
		}
	}
	switch {
	case len(kinds) > 0:
		return fmt.Errorf("%w: broken: %s", errDrift, strings.Join(kinds, ", "))
	case repair && taken > 0:
		return fmt.Errorf("%w: %s", errDrift, takenOf(taken))
	case found > 0 && !repair:
		return fmt.Errorf("%w: %s drifted", errDrift, what)
	}
	return nil
}

func goneOf(n int) string {
	if n == 1 {
		return "1 deleted workspace's membership changes"
	}
	return fmt.Sprintf("%d deleted workspaces' membership changes", n)
}

func orphansOf(n int) string {
	if n == 1 {
		return "1 workspace's memberships of missing contacts or segments"
	}
	return fmt.Sprintf("%d workspaces' memberships of missing contacts or segments", n)
}

func bitmapsOf(n int) string {
	if n == 1 {
		return "1 segment's bitmaps"
	}
	return fmt.Sprintf("%d segments' bitmaps", n)
}

func workspaceCountsOf(n int) string {
	if n == 1 {
		return "1 workspace's contact count"
	}
	return fmt.Sprintf("%d workspaces' contact counts", n)
}

func countersOf(n int) string {
	if n == 1 {
		return "1 segment counter"
	}
	return fmt.Sprintf("%d segment counters", n)
}

// textsOf names the texts of a segment that are not composed.
func textsOf(name, description bool) string {
	switch {
	case name && description:
		return "name and description"
	case name:
		return "name"
	}
	return "description"
}

func uncomposedOf(segments int, contacts int64) string {
	var of []string
	if segments == 1 {
		of = append(of, "1 segment")
	} else if segments > 1 {
		of = append(of, fmt.Sprintf("%d segments", segments))
	}
	if contacts == 1 {
		of = append(of, "1 contact")
	} else if contacts > 1 {
		of = append(of, fmt.Sprintf("%d contacts", contacts))
	}
	return "uncomposed texts of " + strings.Join(of, " and ")
}

func takenOf(n int) string {
	if n == 1 {
		return "1 segment name is not composed, as another segment has its composed name"
	}
	return fmt.Sprintf("%d segment names are not composed, as other segments have their composed names", n)
}
