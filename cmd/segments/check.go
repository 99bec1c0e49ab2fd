package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

// checkHelp describes the check command for "segments help check".
const checkHelp = `segments check [--repair] compares every segment's contact count, in all
workspaces, with the memberships it counts. It prints one line per segment whose
count has drifted and a summary, and exits with status 3 when it found drift.
It also reports a counter trigger that is missing or disabled (status 3 too: the
counts would drift again).

  --repair   set each drifted count to the real number of memberships, in one
             transaction, and exit 0; safe while the server runs and writes

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
	if len(rest) > 0 {
		return fmt.Errorf("%w: check takes no arguments, got %q", errUsage, rest)
	}
	s, closeStore, err := openStore(ctx, cfg, newLogger(stderr, "text"), "segments-check")
	if err != nil {
		return err
	}
	defer closeStore()

	problems, err := s.CountTriggerProblems(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "broken: %s; counts drift with every membership change\n", p)
	}

	var drift []store.CountDrift
	if repair {
		drift, err = s.RepairCounts(ctx)
	} else {
		drift, err = s.CheckCounts(ctx)
	}
	if err != nil {
		return err
	}
	verb := "drift"
	if repair {
		verb = "repaired"
	}
	for _, d := range drift {
		fmt.Fprintf(stdout, "%s: workspace %d %q, segment %s %q: contact_count %d, memberships %d (%+d)\n",
			verb, d.WorkspaceID, d.WorkspaceName, globalid.Encode(globalid.Segment, d.SegmentID), d.SegmentName,
			d.Stored, d.Actual, d.Stored-d.Actual)
	}

	switch {
	case repair:
		fmt.Fprintf(stdout, "%s repaired\n", countersOf(len(drift)))
	case len(drift) > 0:
		fmt.Fprintf(stdout, "%s drifted; run \"segments check --repair\" to repair\n", countersOf(len(drift)))
	default:
		fmt.Fprintln(stdout, "no drift: every segment's contact_count equals its memberships")
	}
	switch {
	case len(problems) > 0:
		return fmt.Errorf("%w: %d counter trigger(s) missing or disabled", errDrift, len(problems))
	case len(drift) > 0 && !repair:
		return fmt.Errorf("%w: %s drifted", errDrift, countersOf(len(drift)))
	}
	return nil
}

func countersOf(n int) string {
	if n == 1 {
		return "1 segment counter"
	}
	return fmt.Sprintf("%d segment counters", n)
}
