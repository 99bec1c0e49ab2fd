package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// resyncRequired reports whether err is the API's refusal of a feed cursor that can
// no longer resume the feed: the client must sync again from the start.
func resyncRequired(err error) bool {
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.Code == "RESYNC_REQUIRED"
}

// mirror keeps outPath a mirror of the workspace's contacts (see the package
// comment): it polls once, or, with an interval, again at each interval until ctx
// is done (an interrupt, which ends it without an error). While polling at an
// interval, a failure that retries did not cure (the API down for longer) is
// reported and the next poll tries again; one a retry cannot change (a revoked key)
// ends it.
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

// mirrorOnce polls the feed from the cursor in statePath to its end and applies what
// it lists to the mirror in outPath. The mirror is written before the cursor, each
// file atomically: a crash between the two leaves the old cursor, from which the
// next poll applies the same changes again, to the same result. Without a stored
// cursor (or without the mirror it belongs to) it syncs from the start into an empty
// mirror; so it does when the API refuses the cursor (RESYNC_REQUIRED), since the
// deletions since the cursor may no longer be listed: the contacts of the old mirror
// are dropped, not kept, and the old mirror stays in place until the new one is
// complete.
func mirrorOnce(ctx context.Context, c *Client, statePath, outPath string, stdout, stderr io.Writer) error {
	cursor, err := readState(statePath)
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
	// An unchanged mirror is not written again, except a new one (after is nil).
	if after == nil || changed+deleted > 0 {
		if err := writeMirror(outPath, contacts); err != nil {
			return err
		}
	}
	if err := writeAtomic(statePath, func(w *bufio.Writer) error {
		_, err := w.WriteString(end + "\n")
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mirror: %d changed, %d deleted, %d contacts\n", changed, deleted, len(contacts))
	return nil
}

// readState returns the cursor stored in path, "" when there is none.
func readState(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
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
// ordered by phone.
func writeMirror(path string, contacts map[string]contact) error {
	return writeAtomic(path, func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		for _, ct := range byPhone(contacts) {
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
