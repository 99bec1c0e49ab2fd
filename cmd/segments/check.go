package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

// checkHelp describes the check command for "segments help check".
const checkHelp = `segments check [--repair] compares every segment's contact count and audience
bitmaps, in all workspaces, with the memberships they are derived from, and every
workspace's contact count with its contacts, and looks for memberships of contacts
or segments that do not exist. It prints one line per segment or workspace whose
count or bitmaps have drifted or that has such memberships, and a summary, and exits
with status 3 when it found any. It also reports a trigger that maintains them and
is missing or disabled (status 3 too: they would drift again). It warns, on stderr,
of PostgreSQL settings that leave the database unsafe, such as an unlimited
temp_file_limit (the exit status does not change: a superuser sets them).

  --repair   delete memberships of missing contacts or segments (leaving counts
             and bitmaps as they were), set each drifted count to the real number
             of memberships or contacts and rebuild each drifted segment's bitmaps,
             in one transaction each, and exit 0; it reports what it found, as a
             check would have; safe while the server runs and writes

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
	return withStore(ctx, cfg, stderr, "segments-check", func(s *store.Store, log *slog.Logger) error {
		warnSettings(ctx, s, log)
		return checkStore(ctx, s, repair, stdout)
	})
}

// checkStore does what check does, on s: reports (or repairs) drift and broken
// triggers.
func checkStore(ctx context.Context, s *store.Store, repair bool, stdout io.Writer) error {
	problems, err := s.TriggerProblems(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "broken: %s; counts, bitmaps or memberships' references go wrong with every change\n", p)
	}

	var orphans []store.Orphans
	var drift []store.CountDrift
	var bitmapDrift []store.BitmapDrift
	var contactDrift []store.ContactCountDrift
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
	}
	if err != nil {
		return err
	}
	verb := "drift"
	if repair {
		verb = "repaired"
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

	found := len(orphans) + len(drift) + len(bitmapDrift) + len(contactDrift)
	what := fmt.Sprintf("%s, %s and %s", countersOf(len(drift)), bitmapsOf(len(bitmapDrift)), workspaceCountsOf(len(contactDrift)))
	if len(orphans) > 0 { // named only when there are some: they need triggers turned off to exist
		what = fmt.Sprintf("%s, %s", orphansOf(len(orphans)), what)
	}
	switch {
	case repair:
		fmt.Fprintf(stdout, "%s repaired\n", what)
	case found > 0:
		fmt.Fprintf(stdout, "%s drifted; run \"segments check --repair\" to repair\n", what)
	default:
		fmt.Fprintln(stdout, "no drift: every segment's contact_count and bitmaps equal its memberships, every workspace's contact count its contacts; every membership's contact and segment exist")
	}
	switch {
	case len(problems) > 0:
		return fmt.Errorf("%w: %d trigger(s) missing or disabled", errDrift, len(problems))
	case found > 0 && !repair:
		return fmt.Errorf("%w: %s drifted", errDrift, what)
	}
	return nil
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
