package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/globalid"
	"github.com/segments/segments/internal/store"
)

// workspaceHelp describes the workspace commands for "segments help workspace".
const workspaceHelp = `Workspaces, each a business with its contacts, segments and API keys:

  segments workspace create NAME
      a workspace named NAME (several words are joined by a space); prints its first
      API key (read_write) on stdout, shown only once. NAME is trimmed and composed
      (NFC); it is refused if it is longer than 200 characters, has control
      characters (line breaks, tabs, escapes, bidi overrides) or is spelled as a
      workspace's ID (W_...). A name another workspace has is made with a warning:
      the commands that take a WORKSPACE refuse it, and take the ID instead
  segments workspace list
      every workspace, oldest first, one a line, its columns separated by tabs
      under a header: ID (W_...), NAME (quoted with Go's escapes when it is not
      plain printable text), CREATED, CONTACTS, SEGMENTS and MEMBERSHIPS (as the
      counters kept with every change tell them: nothing is counted row by row),
      KEYS (the API keys that work: neither revoked nor expired), and DELETING:
      when its deletion began, "-" for none (a deletion that stopped: run it again)
  segments workspace rename WORKSPACE NEW_NAME
      gives the workspace another name, checked as create checks it (quote a name
      of several words)
  segments workspace delete WORKSPACE --confirm WORKSPACE
      deletes the workspace and everything in it: its contacts, segments,
      memberships, API keys, recorded deletions and kept answers. Without --confirm
      repeating the workspace (its ID or its name) it deletes nothing, says what it
      would delete, and exits with status 2. It cuts the workspace off first, for
      every server at once: its API keys are refused, and so are dashboard sessions
      naming it (401; a running server may still let a key it accepted through
      until its --key-cache-ttl passes). Then it deletes the workspace's rows in
      batches, each a short transaction of its own, beside which the other
      workspaces' requests and change feeds go on (1M contacts and 5M memberships:
      under a minute). Stopped midway (Ctrl-C, an error), the workspace stays cut
      off, and workspace list shows when its deletion began: run the command again
      to finish it.

WORKSPACE is the workspace's ID as the API shows it (W_...) or its name, one
argument, as the keys commands take it: a name that several workspaces share is
refused (use the ID). Times are shown in UTC.

`

func init() {
	for _, c := range []string{"workspace", "workspace create", "workspace list", "workspace rename", "workspace delete"} {
		commandHelp[c] = workspaceHelp
	}
}

// workspace runs the workspace commands.
func workspace(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		return help([]string{"workspace"}, stdout, stderr)
	}
	if len(args) > 0 {
		switch args[0] {
		case "create":
			return createWorkspace(ctx, args[1:], getenv, stdout, stderr) // run.go
		case "list":
			return listWorkspaces(ctx, args[1:], getenv, stdout, stderr)
		case "rename":
			return renameWorkspace(ctx, args[1:], getenv, stderr)
		case "delete":
			return deleteWorkspace(ctx, args[1:], getenv, stderr)
		}
	}
	fmt.Fprint(stderr, usage, "\n", workspaceHelp)
	if len(args) == 0 {
		return fmt.Errorf("%w: workspace needs a subcommand: create, list, rename or delete", errUsage)
	}
	return fmt.Errorf("%w: unknown workspace subcommand %q", errUsage, args[0])
}

func listWorkspaces(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parse("workspace list", args, getenv, stderr, false)
	if err != nil {
		return err
	}
	if err := noArgs("workspace list", rest); err != nil {
		return err
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, _ *slog.Logger) error {
		wss, err := s.WorkspaceSummaries(ctx)
		if err != nil {
			return err
		}
		// Tabs, not aligned columns: a script cuts them (cut -f, awk -F'\t'), and a
		// name, shown by listedName, holds none.
		fmt.Fprintln(stdout, "ID\tNAME\tCREATED\tCONTACTS\tSEGMENTS\tMEMBERSHIPS\tKEYS\tDELETING")
		for _, ws := range wss {
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", globalid.Encode(globalid.Workspace, ws.ID), listedName(ws.Name),
				showTime(&ws.CreatedAt), ws.Contacts, ws.Segments, ws.Memberships, ws.ActiveKeys, showTime(ws.DeletingSince))
		}
		return nil
	})
}

func renameWorkspace(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, rest, err := parse("workspace rename", args, getenv, stderr, false)
	if err != nil {
		return err
	}
	if len(rest) != 2 || strings.TrimSpace(rest[0]) == "" {
		return fmt.Errorf("%w: workspace rename takes a WORKSPACE and its NEW_NAME, got %q (quote a name of several words)", errUsage, rest)
	}
	name, err := crm.NormalizeWorkspaceName(rest[1])
	if err != nil {
		return fmt.Errorf("%w: NEW_NAME: %v", errUsage, err)
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		ws, err := findWorkspace(ctx, s, strings.TrimSpace(rest[0]))
		if err != nil {
			return err
		}
		id := globalid.Encode(globalid.Workspace, ws.ID)
		if err := notBeingDeleted(ctx, s, ws, "rename"); err != nil {
			return err
		}
		twins, err := s.WorkspacesByName(ctx, name, 3)
		if err != nil {
			return err
		}
		if err := s.RenameWorkspace(ctx, ws.ID, name); err != nil {
			return err
		}
		log.Info("workspace renamed", "id", id, "old_name", ws.Name, "name", name)
		if others := otherWorkspaces(twins, ws.ID); len(others) > 0 {
			log.Warn("another workspace has this name: the commands that take a WORKSPACE refuse it as ambiguous, name this workspace by its ID",
				"workspace", name, "id", id, "others", workspaceIDs(others))
		}
		return nil
	})
}

// otherWorkspaces returns the workspaces of wss but the one whose ID is id.
func otherWorkspaces(wss []crm.Workspace, id int64) []crm.Workspace {
	var out []crm.Workspace
	for _, ws := range wss {
		if ws.ID != id {
			out = append(out, ws)
		}
	}
	return out
}

func deleteWorkspace(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var confirm string
	confirmed := false
	cfg, rest, err := parse("workspace delete", args, getenv, stderr, false, func(fs *flag.FlagSet) {
		fs.Func("confirm", "", func(s string) error { confirm, confirmed = strings.TrimSpace(s), true; return nil })
	})
	if err != nil {
		return err
	}
	arg, err := oneWorkspace("workspace delete", rest)
	if err != nil {
		return err
	}
	return withStore(ctx, cfg, stderr, "segments-cli", func(s *store.Store, log *slog.Logger) error {
		ws, err := findWorkspace(ctx, s, arg)
		if err != nil {
			return err
		}
		sum, err := s.WorkspaceSummary(ctx, ws.ID)
		if err != nil {
			return err
		}
		id := globalid.Encode(globalid.Workspace, ws.ID)
		what := fmt.Sprintf("workspace %s (%s): %d contacts, %d segments (%d memberships), %d API keys (%d working)",
			id, listedName(ws.Name), sum.Contacts, sum.Segments, sum.Memberships, sum.Keys, sum.ActiveKeys)
		if sum.DeletingSince != nil {
			what += ", cut off and being deleted since " + showTime(sum.DeletingSince)
		}
		switch {
		case !confirmed:
			// As Heroku's apps:destroy: the operator names what goes twice, and sees
			// its size before anything is gone.
			return fmt.Errorf("%w: workspace delete deletes %s; nothing is deleted without --confirm repeating the workspace: --confirm %s",
				errUsage, what, id)
		case confirm != id && confirm != ws.Name && crm.WorkspaceNameText(confirm) != ws.Name:
			// The name as typed or as names are kept, as the workspace was found:
			// "Cafe\u0301 Ltd" confirms "Café Ltd".
			return fmt.Errorf("%w: --confirm %q names neither the ID (%s) nor the name (%s) of the workspace to delete; nothing deleted",
				errUsage, confirm, id, listedName(ws.Name))
		}
		start := time.Now()
		log.Info("deleting workspace: cut off first (its API keys and sessions are refused), then its rows in batches",
			"id", id, "workspace", ws.Name, "contacts", sum.Contacts, "segments", sum.Segments, "memberships", sum.Memberships, "keys", sum.Keys)
		var logged time.Time
		err = s.DeleteWorkspace(ctx, ws.ID, func(p store.WorkspaceDeletionProgress) {
			// A line per table, and one every 10 s within a long one.
			if p.Done || time.Since(logged) >= 10*time.Second {
				log.Info("deleting workspace", "id", id, "table", p.Table, "rows_deleted", p.Rows, "table_done", p.Done,
					"elapsed", time.Since(start).Round(time.Millisecond))
				logged = time.Now()
			}
		})
		if err != nil {
			return fmt.Errorf("workspace %s stopped being deleted midway (it stays cut off: run workspace delete again to finish): %w", id, err)
		}
		log.Info("workspace deleted", "id", id, "workspace", ws.Name, "elapsed", time.Since(start).Round(time.Millisecond))
		return nil
	})
}

// notBeingDeleted refuses to do what to a workspace whose deletion began: it stays
// cut off (its keys never work), and the next workspace delete finishes it.
func notBeingDeleted(ctx context.Context, s *store.Store, ws crm.Workspace, what string) error {
	sum, err := s.WorkspaceSummary(ctx, ws.ID)
	if err != nil {
		return err
	}
	if sum.DeletingSince != nil {
		return fmt.Errorf("workspace %s (%q) is being deleted since %s: run workspace delete again to finish, not %s",
			globalid.Encode(globalid.Workspace, ws.ID), ws.Name, showTime(sum.DeletingSince), what)
	}
	return nil
}
