package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/segments/segments/internal/benchdata"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

// benchDataHelp describes the bench-data command for "segments help bench-data".
const benchDataHelp = `segments bench-data [flags] creates a workspace and fills it with the benchmark
dataset (issue #5): by default 1,000,000 contacts, 1,000 segments and 5,000,000
memberships, ten segments of 100,000 members and the rest skewed. The same sizes
and seed give the same data. It prints the workspace's API key on stdout.

The load is a bulk load (COPY, indexes and constraints rebuilt after it, counters
backfilled) in one transaction that locks the contacts, segments and memberships
tables of the whole database until it commits (about a minute at the default size
into an empty database; the indexes are rebuilt over every workspace's rows, so 200,000
contacts beside 2,000,000 took two minutes): use a database that serves no traffic.

  --workspace NAME      name of the workspace to create (default "Bench")
  --contacts N          contacts (default 1000000; at least 1)
  --segments N          segments (default 1000; at least 1)
  --memberships N       memberships (default 5 per contact; 0: none, with no big
                        segment members)
  --big-segments N      segments of --big-size members (default 10; 0: none)
  --big-size N          members of each big segment (default contacts/10)
  --seed N              seed of the data (default 1; at least 1)
  --neighbours N        also make sure the database holds N small workspaces
                        beside it ("Neighbour 1" to "Neighbour N", each 150
                        contacts, 10 segments and 300 memberships, written with
                        the triggers on; those already there are kept), as a
                        service of many businesses holds them; 0 (the default)
                        adds none. 2,000 take about a minute.

`

func init() { commandHelp["bench-data"] = benchDataHelp }

func benchData(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o benchdata.Options
	var neighbours int
	var flags *flag.FlagSet
	cfg, rest, err := parse("bench-data", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		flags = fs
		fs.StringVar(&o.Workspace, "workspace", benchdata.DefaultWorkspace, "")
		fs.IntVar(&o.Contacts, "contacts", 0, "")
		fs.IntVar(&o.Segments, "segments", 0, "")
		fs.IntVar(&o.Memberships, "memberships", 0, "")
		fs.IntVar(&o.BigSegments, "big-segments", 0, "")
		fs.IntVar(&o.BigSize, "big-size", 0, "")
		fs.Uint64Var(&o.Seed, "seed", 0, "")
		fs.IntVar(&neighbours, "neighbours", 0, "")
	})
	if err != nil {
		return err
	}
	if err := noArgs("bench-data", rest); err != nil {
		return err
	}
	// A size set to 0 is 0, not "the default" (Fill's reading of a zero): refused
	// where a dataset needs one (--contacts, --segments), else taken (no big segments,
	// no memberships).
	sizes := map[string]*int{"contacts": &o.Contacts, "segments": &o.Segments, "memberships": &o.Memberships,
		"big-segments": &o.BigSegments, "big-size": &o.BigSize}
	var zeros []*int
	var errSet error
	flags.Visit(func(f *flag.Flag) {
		if p, ok := sizes[f.Name]; ok && *p == 0 {
			zeros = append(zeros, p)
		}
		switch {
		case f.Name == "seed" && o.Seed == 0:
			errSet = fmt.Errorf("%w: --seed must be 1 or more: 0 stands for the default seed, 1", errUsage)
		case f.Name == "workspace":
			// As workspace create checks its NAME, before the neighbours are loaded.
			if _, err := crm.NormalizeWorkspaceName(o.Workspace); err != nil {
				errSet = fmt.Errorf("%w: --workspace: %v", errUsage, err)
			}
		}
	})
	if errSet != nil {
		return errSet
	}
	o = o.Fill()
	for _, p := range zeros {
		*p = 0
	}
	if err := o.Check(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if neighbours < 0 {
		return fmt.Errorf("%w: --neighbours must be 0 or more, not %d", errUsage, neighbours)
	}
	return withStore(ctx, cfg, stderr, "segments-bench-data", func(s *store.Store, log *slog.Logger) error {
		// The neighbours first: the dataset's VACUUM ANALYZE then covers theirs too.
		if _, err := benchdata.LoadNeighbours(ctx, s, neighbours, o.Seed, log); err != nil {
			return err
		}
		res, err := benchdata.Load(ctx, s, o, log)
		if err != nil {
			return err
		}
		log.Info("bench-data loaded; the workspace's API key is on stdout",
			"workspace", res.Workspace.Name, "id", globalid.Encode(globalid.Workspace, res.Workspace.ID),
			"contacts", o.Contacts, "segments", o.Segments, "memberships", res.Memberships,
			"elapsed", res.Elapsed.Round(time.Millisecond))
		fmt.Fprintln(stdout, res.Key)
		return nil
	})
}
