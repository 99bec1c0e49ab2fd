package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// resyncRequired reports whether err is the API's refusal of a feed cursor that can
// no longer resume the feed: the client must sync again from the start.
func resyncRequired(err error) bool {
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.Code == "RESYNC_REQUIRED"
}

// mirror keeps outPath a mirror of the workspace's contacts, and membersPath(outPath)
// of its segments' members (see the package comment): it polls once, or, with an
// interval, again at each interval until ctx is done (an interrupt, which ends it
// without an error). While polling at an interval, a failure that retries did not
// cure (the API down for longer) is reported and the next poll tries again; one a
// retry cannot change (a revoked key) ends it.
func mirror(ctx context.Context, c *Client, statePath, outPath string, interval time.Duration, stdout, stderr io.Writer) error {
	for {
		err := mirrorOnce(ctx, c, statePath, outPath, stdout, stderr)
		if interval == 0 {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !temporary(err) {
				return err
			}
			fmt.Fprintf(stderr, "mirror: %v; polling again in %v\n", err, interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// mirrorOnce polls the feeds from the cursors in statePath to their ends and applies
// what they list to the mirror: the contacts (contactChanges) in outPath, each with
// the IDs of its segments, and the segments' members (membershipChanges) in
// membersPath(outPath). The mirror's files are written before the cursors, each file
// atomically: a crash between them leaves the old cursors, from which the next poll
// applies the same changes again, to the same result (an entry of either feed sets
// what it names to its value then, so applying a run of them twice ends as once).
// Without a stored cursor (or without the file it belongs to) a feed is synced from
// the start into an empty mirror; so it is when the API refuses the cursor
// (RESYNC_REQUIRED), since the deletions and removals since the cursor may no longer
// be listed: what the old mirror held is dropped, not kept, and the old files stay in
// place until the new ones are complete. Each feed has its own cursor: one refused
// leaves the other's mirror as it is.
func mirrorOnce(ctx context.Context, c *Client, statePath, outPath string, stdout, stderr io.Writer) error {
	cursor, mcursor, err := readState(statePath)
	if err != nil {
		return err
	}
	contacts := map[string]contact{}
	if cursor != "" {
		contacts, err = readMirror(outPath)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "mirror: %s is missing: syncing again from the start\n", outPath)
			cursor, contacts = "", map[string]contact{}
		} else if err != nil {
			return err
		}
	}
	mpath := membersPath(outPath)
	members := map[string]map[string]bool{}
	if mcursor != "" {
		members, err = readMembers(mpath)
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "mirror: %s is missing: syncing the memberships again from the start\n", mpath)
			mcursor, members = "", map[string]map[string]bool{}
		} else if err != nil {
			return err
		}
	}
	changed, deleted := 0, 0
	apply := func(ch change) {
		if ch.Contact != nil {
			contacts[ch.ContactID] = *ch.Contact
			changed++
		} else if _, ok := contacts[ch.ContactID]; ok {
			delete(contacts, ch.ContactID)
			deleted++
		}
	}
	var after *string
	if cursor != "" {
		after = &cursor
	}
	end, _, _, err := walkFeed(ctx, c, after, false, apply)
	if after != nil && resyncRequired(err) {
		fmt.Fprintf(stderr, "mirror: the stored cursor was refused: %v; syncing again from the start\n", err)
		after, contacts, changed, deleted = nil, map[string]contact{}, 0, 0
		end, _, _, err = walkFeed(ctx, c, nil, false, apply)
	}
	if err != nil {
		return err
	}

	entries := 0
	applyMembers := func(ch membershipChange) {
		set := members[ch.SegmentID]
		if set == nil {
			set = map[string]bool{}
			members[ch.SegmentID] = set
		}
		for _, id := range ch.ContactIDs {
			if ch.Action == "REMOVED" {
				delete(set, id)
			} else {
				set[id] = true
			}
		}
		// A segment without members is left out, as a deleted one, whose members
		// its deletion listed REMOVED, must be.
		if len(set) == 0 {
			delete(members, ch.SegmentID)
		}
		entries++
	}
	var mafter *string
	if mcursor != "" {
		mafter = &mcursor
	}
	mend, err := walkMemberships(ctx, c, mafter, applyMembers)
	if mafter != nil && resyncRequired(err) {
		fmt.Fprintf(stderr, "mirror: the stored cursor of the memberships was refused: %v; syncing them again from the start\n", err)
		mafter, members, entries = nil, map[string]map[string]bool{}, 0
		mend, err = walkMemberships(ctx, c, nil, applyMembers)
	}
	if err != nil {
		return err
	}

	// An unchanged mirror is not written again, except a new one (after is nil).
	if after == nil || mafter == nil || changed+deleted+entries > 0 {
		if err := writeMirror(outPath, contacts, members); err != nil {
			return err
		}
	}
	if mafter == nil || entries > 0 {
		if err := writeMembers(mpath, members); err != nil {
			return err
		}
	}
	if err := writeAtomic(statePath, func(w *bufio.Writer) error {
		_, err := w.WriteString(end + "\n" + mend + "\n")
		return err
	}); err != nil {
		return err
	}
	memberships := 0
	for _, set := range members {
		memberships += len(set)
	}
	fmt.Fprintf(stdout, "mirror: %d changed, %d deleted, %d contacts\n", changed, deleted, len(contacts))
	fmt.Fprintf(stdout, "mirror: %d membership entries, %d segments, %d memberships\n", entries, len(members), memberships)
	return nil
}

// readState returns the cursors stored in path, of the contacts and of the
// memberships, one a line; "" for one there is none of (a file written before the
// mirror kept memberships holds only the contacts').
func readState(path string) (contacts, memberships string, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", nil
	}
	lines := strings.Fields(string(b))
	if len(lines) > 0 {
		contacts = lines[0]
	}
	if len(lines) > 1 {
		memberships = lines[1]
	}
	return contacts, memberships, err
}

// membersPath is where a mirror in outPath keeps its segments' members: beside it,
// contacts.jsonl's in contacts.segments.jsonl.
func membersPath(outPath string) string {
	ext := filepath.Ext(outPath)
	return strings.TrimSuffix(outPath, ext) + ".segments" + ext
}

// segmentMembers is a line of the members file: a segment's ID and its members'.
type segmentMembers struct {
	SegmentID  string   `json:"segmentId"`
	ContactIDs []string `json:"contactIds"`
}

// readMembers reads a members file that writeMembers wrote: each segment's set of
// members, by segment ID.
func readMembers(path string) (map[string]map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	members := map[string]map[string]bool{}
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var sm segmentMembers
		if err := dec.Decode(&sm); err == io.EOF {
			return members, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		set := map[string]bool{}
		for _, id := range sm.ContactIDs {
			set[id] = true
		}
		members[sm.SegmentID] = set
	}
}

// writeMembers writes the segments' members to path atomically, one JSON object a
// segment and line, ordered by segment ID, its contacts' IDs sorted.
func writeMembers(path string, members map[string]map[string]bool) error {
	return writeAtomic(path, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		for _, id := range slices.Sorted(maps.Keys(members)) {
			if err := enc.Encode(segmentMembers{SegmentID: id, ContactIDs: slices.Sorted(maps.Keys(members[id]))}); err != nil {
				return err
			}
		}
		return nil
	})
}

// readMirror reads a mirror that writeMirror wrote, by contact ID.
func readMirror(path string) (map[string]contact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	contacts := map[string]contact{}
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var ct contact
		if err := dec.Decode(&ct); err == io.EOF {
			return contacts, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		contacts[ct.ID] = ct
	}
}

// writeMirror writes the contacts to path atomically, one JSON object a line,
// ordered by phone, each with the IDs of the segments members lists it in (sorted).
func writeMirror(path string, contacts map[string]contact, members map[string]map[string]bool) error {
	segmentIDs := map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(members)) {
		for contactID := range members[id] {
			segmentIDs[contactID] = append(segmentIDs[contactID], id)
		}
	}
	return writeAtomic(path, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		for _, ct := range byPhone(contacts) {
			ct.SegmentIDs = segmentIDs[ct.ID]
			if err := enc.Encode(ct); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeAtomic replaces path with what write writes: into a temporary file in the
// same directory, flushed to disk, then renamed over path, so that path holds the
// old content or the new, whole, even across a crash.
func writeAtomic(path string, write func(*bufio.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// The rename itself is durable once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
