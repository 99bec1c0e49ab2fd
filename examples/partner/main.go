// Command partner is a partner's integration with the segments API, written the way a
// partner would write it: the Go standard library only, with its own small GraphQL
// client (client.go). It syncs contacts from a CSV file into a workspace, exports
// them back, and keeps a local mirror of them up to date:
//
//	go run ./examples/partner sync examples/partner/contacts.csv
//	go run ./examples/partner export > contacts.csv
//	go run ./examples/partner -interval 1m mirror mirror.state contacts.jsonl
//
// The endpoint and the API key come from -endpoint and -key, or SEGMENTS_ENDPOINT and
// SEGMENTS_API_KEY. sync needs a read_write key (segments keys create WORKSPACE
// --scope read_write); export and mirror work with a read key.
//
// The CSV file has a header line: phone,name,email,city,segments (after a byte order
// mark, which Excel's "CSV UTF-8" writes), where segments holds segment names
// separated by ";", a name's ";" written "\;" and its "\" written "\\" (joinSegments;
// another "\" is read as itself); an empty cell clears the field (the city is kept in
// the contact's attributes). sync finds or creates the segments first, under any name
// the API takes as a segment's (ensureSegments), then upserts the contacts by phone in
// chunks of up to 1,000, each contact with its segments (addToSegmentIds: the contacts
// and their memberships are written together or not at all), an invalid row reported
// and left out, the rest of its chunk sent again.
//
// export reads the change feed (contactChanges) from the start to its end, keeping
// each contact's latest state, and writes the contacts in the same CSV format,
// ordered by phone. The feed passes no change that commits late, but its end trails
// the present by the longest transaction still running: so export reads on from its
// end once more when -settle (15 s, the server's --request-timeout plus 5 s) has
// passed since it began, and holds every contact committed before it began.
//
// mirror keeps OUT_FILE, one JSON object per contact and line (id, phone, name,
// email, attributes, createdAt, updatedAt, segmentIds; ordered by phone), and beside
// it the segments' members (contacts.jsonl's in contacts.segments.jsonl: one JSON
// object per segment with members and line, segmentId and its contactIds), up to
// date: it polls the feed of contacts (contactChanges) and the feed of memberships
// (membershipChanges), each from its cursor stored in STATE_FILE (a line each; none:
// from the start), applies the changes, deletions, additions and removals, writes
// the files and then the new cursors, each atomically (a crash between them applies
// the same changes again, which is harmless). A contact's segmentIds are those of
// the members mirror. A cursor the API refuses with RESYNC_REQUIRED (older than 29
// days, or made before a restore) rebuilds that feed's part of the mirror from the
// start. -interval polls again at that interval until interrupted; 0, the default,
// polls once.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// The limits of the API (README, "Rules clients can rely on").
const (
	maxContactsPerMutation = 1000
	maxIDsPerList          = 100
	maxPageSize            = 100
	// maxSegmentIDsPerUpsert is the most segment IDs an upsert's entries may name in
	// all their addToSegmentIds.
	maxSegmentIDsPerUpsert = 10_000
)

// run is the program: it returns the exit status (0 done, 1 failed, 2 bad usage).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("partner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", or(getenv("SEGMENTS_ENDPOINT"), "http://127.0.0.1:8080/graphql"), "the API's URL (SEGMENTS_ENDPOINT)")
	key := fs.String("key", getenv("SEGMENTS_API_KEY"), "the API key (SEGMENTS_API_KEY)")
	chunk := fs.Int("chunk", maxContactsPerMutation, "contacts per mutation, at most 1000")
	attempts := fs.Int("attempts", 6, "attempts per request, retries included")
	backoff := fs.Duration("backoff", 500*time.Millisecond, "wait before the first retry; doubles at each retry")
	interval := fs.Duration("interval", 0, "mirror: poll again at this interval until interrupted; 0 polls once")
	settle := fs.Duration("settle", 15*time.Second, "export: how long after it began the export reads the feed's end again; the server's --request-timeout plus 5 s")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: partner [flags] sync FILE.csv | export | mirror STATE_FILE OUT_FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *key == "" || *interval < 0 || *settle < 0 || *chunk < 1 || *chunk > maxContactsPerMutation || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	c := &Client{Endpoint: *endpoint, Key: *key, Attempts: *attempts, Backoff: *backoff, MaxBackoff: 30 * time.Second,
		Retried: func(attempt int, wait time.Duration, cause error) {
			fmt.Fprintf(stderr, "retry %d in %v: %v\n", attempt, wait.Round(time.Millisecond), cause)
		}}
	var err error
	switch cmd := fs.Arg(0); {
	case cmd == "sync" && fs.NArg() == 2:
		err = syncFile(ctx, c, fs.Arg(1), *chunk, stdout, stderr)
	case cmd == "export" && fs.NArg() == 1:
		err = export(ctx, c, *settle, stdout, stderr)
	case cmd == "mirror" && fs.NArg() == 3:
		err = mirror(ctx, c, fs.Arg(1), fs.Arg(2), *interval, stdout, stderr)
	default:
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "partner:", err)
		return 1
	}
	return 0
}

// row is a line of the CSV file.
type row struct {
	line     int
	phone    string
	name     string
	email    string
	city     string
	segments []string
}

func syncFile(ctx context.Context, c *Client, path string, chunk int, stdout, stderr io.Writer) error {
	rows, err := readCSV(path)
	if err != nil {
		return err
	}
	segmentIDs, all, created, err := ensureSegments(ctx, c, rows)
	if err != nil {
		return err
	}
	stats, err := upsert(ctx, c, rows, segmentIDs, chunk, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "contacts: %d created, %d updated, %d skipped\n", stats.created, stats.updated, stats.skipped)
	fmt.Fprintf(stdout, "segments: %d created\n", created)
	fmt.Fprintf(stdout, "memberships: %d added\n", stats.added)
	return printCounts(ctx, c, all, stdout)
}

func readCSV(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Excel's "CSV UTF-8" begins the file with a byte order mark, which would be
	// read as part of the header's first name.
	br := bufio.NewReader(f)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	r := csv.NewReader(br)
	r.FieldsPerRecord = 5
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if strings.Join(header, ",") != "phone,name,email,city,segments" {
		return nil, fmt.Errorf("%s: the header must be phone,name,email,city,segments", path)
	}
	var rows []row
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		rows = append(rows, row{line: line, phone: rec[0], name: rec[1], email: rec[2], city: rec[3], segments: splitSegments(rec[4])})
	}
}

// splitSegments returns the segment names of a segments cell: separated by ";",
// with "\;" a ";" of a name and "\\" a "\" (joinSegments). Any other "\" is
// itself, as in files written before names were escaped.
func splitSegments(cell string) []string {
	var names []string
	var b strings.Builder
	add := func() {
		if name := strings.TrimSpace(b.String()); name != "" {
			names = append(names, name)
		}
		b.Reset()
	}
	for i := 0; i < len(cell); i++ {
		switch c := cell[i]; {
		case c == '\\' && i+1 < len(cell) && (cell[i+1] == ';' || cell[i+1] == '\\'):
			i++
			b.WriteByte(cell[i])
		case c == ';':
			add()
		default:
			b.WriteByte(c)
		}
	}
	add()
	return names
}

// segmentEscaper writes a name for splitSegments: the API allows ";" in names.
var segmentEscaper = strings.NewReplacer(`\`, `\\`, `;`, `\;`)

// joinSegments is the segments cell of the names, which splitSegments reads back.
func joinSegments(names []string) string {
	escaped := make([]string, len(names))
	for i, name := range names {
		escaped[i] = segmentEscaper.Replace(name)
	}
	return strings.Join(escaped, ";")
}

// userError is an element of a mutation payload's userErrors.
type userError struct {
	Field   []string `json:"field"`
	Message string   `json:"message"`
	Code    string   `json:"code"`
}

// payloadError is a mutation refused with userErrors: nothing of it applied.
type payloadError []userError

func (p payloadError) Error() string {
	msgs := make([]string, len(p))
	for i, e := range p {
		msgs[i] = fmt.Sprintf("%s at %s: %s", e.Code, strings.Join(e.Field, "."), e.Message)
	}
	return "refused: " + strings.Join(msgs, "; ")
}

const segmentsQuery = `query Segments($after: String) {
  segments(first: 100, after: $after, orderBy: {field: CREATED_AT, direction: ASC}) {
    pageInfo { hasNextPage endCursor }
    nodes { id name }
  }
}`

// allSegments pages through the workspace's segments and maps their names, in lower
// case (names are unique regardless of case), to their IDs.
func allSegments(ctx context.Context, c *Client) (map[string]string, error) {
	ids := map[string]string{}
	var after *string
	for {
		var out struct {
			Segments struct {
				PageInfo struct {
					HasNextPage bool    `json:"hasNextPage"`
					EndCursor   *string `json:"endCursor"`
				} `json:"pageInfo"`
				Nodes []struct{ ID, Name string } `json:"nodes"`
			} `json:"segments"`
		}
		if err := c.Query(ctx, segmentsQuery, map[string]any{"after": after}, &out); err != nil {
			return nil, err
		}
		for _, s := range out.Segments.Nodes {
			ids[strings.ToLower(s.Name)] = s.ID
		}
		if !out.Segments.PageInfo.HasNextPage {
			return ids, nil
		}
		after = out.Segments.PageInfo.EndCursor
	}
}

const createSegmentMutation = `mutation CreateSegment($input: CreateSegmentInput!) {
  createSegment(input: $input) {
    segment { id name }
    userErrors { field message code }
  }
}`

// ensureSegments returns the ID of each segment name the rows hold, as written in
// the file, creating the segments the workspace lacks, and the IDs of all the
// workspace's segments. It writes no contact: a name it cannot resolve fails the
// sync before anything but segments is written.
//
// The server stores a name in its own form (composed, its spaces of every kind as
// spaces, its invisible characters dropped; docs/partners.md, Errors) and compares
// names ignoring case, rules this program does not repeat: "Holi\u00a0Buyers" in the
// file is the segment "Holi Buyers". So a name not among the segments as the server
// returns them is looked up by segmentByName, which compares as the server does, and
// created when it finds none (or, when another client created it meanwhile and
// createSegment answers TAKEN, looked up again).
func ensureSegments(ctx context.Context, c *Client, rows []row) (map[string]string, map[string]string, int, error) {
	stored, err := allSegments(ctx, c)
	if err != nil {
		return nil, nil, 0, err
	}
	ids := map[string]string{} // the file's names -> IDs
	created := 0
	for _, r := range rows {
		for _, name := range r.segments {
			if ids[name] != "" {
				continue
			}
			if id := stored[strings.ToLower(name)]; id != "" {
				ids[name] = id
				continue
			}
			id, err := segmentByName(ctx, c, name)
			if err != nil {
				return nil, nil, 0, fmt.Errorf("line %d: segment %q: %w", r.line, name, err)
			}
			if id != "" {
				ids[name] = id
				continue
			}
			var out struct {
				CreateSegment struct {
					Segment    *struct{ ID, Name string } `json:"segment"`
					UserErrors payloadError               `json:"userErrors"`
				} `json:"createSegment"`
			}
			in := map[string]any{"name": name, "description": "Synced by the partner example"}
			if err := c.Mutate(ctx, createSegmentMutation, map[string]any{"input": in}, &out); err != nil {
				return nil, nil, 0, err
			}
			switch errs := out.CreateSegment.UserErrors; {
			case len(errs) == 1 && errs[0].Code == "TAKEN":
				// Created by another client since the lookup.
				id, err := segmentByName(ctx, c, name)
				if err == nil && id == "" {
					err = errs // and deleted again since
				}
				if err != nil {
					return nil, nil, 0, fmt.Errorf("line %d: segment %q: %w", r.line, name, err)
				}
				ids[name] = id
			case len(errs) > 0:
				return nil, nil, 0, fmt.Errorf("line %d: segment %q: %w", r.line, name, errs)
			default:
				s := out.CreateSegment.Segment
				stored[strings.ToLower(s.Name)] = s.ID
				ids[name] = s.ID
				created++
			}
		}
	}
	return ids, stored, created, nil
}

// segmentByName returns the ID of the workspace's segment named name, compared as
// the server compares segment names, or "" when it has none.
func segmentByName(ctx context.Context, c *Client, name string) (string, error) {
	var out struct {
		SegmentByName *struct{ ID string } `json:"segmentByName"`
	}
	if err := c.Query(ctx, `query SegmentByName($name: String!) { segmentByName(name: $name) { id } }`, map[string]any{"name": name}, &out); err != nil {
		return "", err
	}
	if out.SegmentByName == nil {
		return "", nil
	}
	return out.SegmentByName.ID, nil
}

const upsertMutation = `mutation UpsertContacts($input: UpsertContactsInput!) {
  upsertContacts(input: $input) {
    createdCount
    updatedCount
    assignedCount
    userErrors { field message code }
  }
}`

type upsertStats struct{ created, updated, skipped, added int }

// upsert creates or updates the rows' contacts, each added to the row's segments by
// the IDs of the names in the file (ensureSegments), in chunks of at most chunk rows
// naming at most maxSegmentIDsPerUpsert segment IDs. A mutation with userErrors
// changed nothing: the rows its errors point at (["input", "contacts", "7", ...]) are
// reported and left out, and the rest of the chunk is sent again. Upserting is safe
// to repeat: memberships that exist are kept and not counted.
func upsert(ctx context.Context, c *Client, rows []row, segmentIDs map[string]string, chunk int, stderr io.Writer) (upsertStats, error) {
	var stats upsertStats
	for start := 0; start < len(rows); {
		batch := make([]int, 0, chunk) // indexes into rows
		contacts := make([]map[string]any, 0, chunk)
		named := 0
		for i := start; i < len(rows) && len(batch) < chunk; i++ {
			r := rows[i]
			ids := []string{}
			for _, name := range r.segments {
				id := segmentIDs[name]
				if id == "" {
					// ensureSegments resolves every name: an empty ID would be refused.
					return stats, fmt.Errorf("line %d: segment %q was not resolved", r.line, name)
				}
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			if len(batch) > 0 && named+len(ids) > maxSegmentIDsPerUpsert {
				break
			}
			named += len(ids)
			batch = append(batch, i)
			contacts = append(contacts, map[string]any{"phone": r.phone, "name": r.name, "email": r.email,
				"attributes": map[string]any{"city": nullIfEmpty(r.city)}, "addToSegmentIds": ids})
		}
		start += len(batch)
		for len(batch) > 0 {
			var out struct {
				UpsertContacts struct {
					CreatedCount  int          `json:"createdCount"`
					UpdatedCount  int          `json:"updatedCount"`
					AssignedCount int          `json:"assignedCount"`
					UserErrors    payloadError `json:"userErrors"`
				} `json:"upsertContacts"`
			}
			if err := c.Mutate(ctx, upsertMutation, map[string]any{"input": map[string]any{"contacts": contacts}}, &out); err != nil {
				return stats, err
			}
			p := out.UpsertContacts
			if len(p.UserErrors) == 0 {
				stats.created += p.CreatedCount
				stats.updated += p.UpdatedCount
				stats.added += p.AssignedCount
				break
			}
			bad := map[int]bool{}
			for _, e := range p.UserErrors {
				j, ok := contactIndex(e.Field)
				if !ok || j >= len(batch) {
					return stats, p.UserErrors // not about one row: nothing to leave out
				}
				if !bad[j] {
					fmt.Fprintf(stderr, "line %d: skipped: %s (%s)\n", rows[batch[j]].line, e.Message, e.Code)
				}
				bad[j] = true
			}
			stats.skipped += len(bad)
			keptRows, keptContacts := batch[:0:0], contacts[:0:0]
			for j, i := range batch {
				if !bad[j] {
					keptRows, keptContacts = append(keptRows, i), append(keptContacts, contacts[j])
				}
			}
			batch, contacts = keptRows, keptContacts
		}
	}
	return stats, nil
}

// contactIndex returns the index of the input entry a userError's field points at.
func contactIndex(field []string) (int, bool) {
	if len(field) < 3 || field[0] != "input" || field[1] != "contacts" {
		return 0, false
	}
	j, err := strconv.Atoi(field[2])
	return j, err == nil
}

const countsQuery = `query Counts($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Segment { name contactCount } }
}`

// printCounts prints the name and size of the given segments, by name.
func printCounts(ctx context.Context, c *Client, segmentIDs map[string]string, stdout io.Writer) error {
	ids := make([]string, 0, len(segmentIDs))
	for _, id := range segmentIDs {
		ids = append(ids, id)
	}
	type segment struct {
		Name         string `json:"name"`
		ContactCount int    `json:"contactCount"`
	}
	var all []segment
	for start := 0; start < len(ids); start += maxIDsPerList {
		var out struct {
			Nodes []*segment `json:"nodes"`
		}
		if err := c.Query(ctx, countsQuery, map[string]any{"ids": ids[start:min(start+maxIDsPerList, len(ids))]}, &out); err != nil {
			return err
		}
		for _, s := range out.Nodes {
			if s != nil {
				all = append(all, *s)
			}
		}
	}
	slices.SortFunc(all, func(a, b segment) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range all {
		fmt.Fprintf(stdout, "%s: %d contacts\n", s.Name, s.ContactCount)
	}
	return nil
}

// contact is a contact as the change feed lists it.
type contact struct {
	ID         string          `json:"id"`
	Phone      string          `json:"phone"`
	Name       *string         `json:"name"`
	Email      *string         `json:"email"`
	Attributes json.RawMessage `json:"attributes"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
	// Segments is read by export only, at the contact's latest change: the feed of
	// contacts lists no membership change, so a mirror's would go stale.
	Segments []struct {
		Name string `json:"name"`
	} `json:"segments,omitempty"`
	// SegmentIDs is written by mirror, from its mirror of the segments' members.
	SegmentIDs []string `json:"segmentIds,omitempty"`
}

// export writes every contact of the workspace as CSV, in the format sync reads,
// ordered by phone. It reads the change feed from the start (after: null) to its
// end: each contact is listed at its latest state, one changed during the walk again
// later (the later state wins), a deleted one as its deletion (it is dropped). The
// feed lists a change only once every transaction that began before it has ended,
// so one that commits while the walk runs is listed behind it, never passed. But
// the feed's end trails the present by the longest transaction still running (at
// most the server's --request-timeout plus 5 s): a contact whose transaction began
// behind another's still running can have committed before the export began and be
// missing from the feed's end for that long. So when the walk ends sooner than
// settle after the export began, export waits out the rest and reads on from the
// end it reached: then every change committed before the export began is in.
func export(ctx context.Context, c *Client, settle time.Duration, stdout, stderr io.Writer) error {
	began := time.Now()
	contacts := map[string]contact{}
	apply := func(ch change) {
		if ch.Contact == nil {
			delete(contacts, ch.ContactID)
		} else {
			contacts[ch.ContactID] = *ch.Contact
		}
	}
	end, changes, pages, err := walkFeed(ctx, c, nil, true, apply)
	if err != nil {
		return err
	}
	if wait := settle - time.Since(began); wait > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		_, more, morePages, err := walkFeed(ctx, c, &end, true, apply)
		if err != nil {
			return err
		}
		changes, pages = changes+more, pages+morePages
	}
	w := csv.NewWriter(stdout)
	if err := w.Write([]string{"phone", "name", "email", "city", "segments"}); err != nil {
		return err
	}
	for _, ct := range byPhone(contacts) {
		var attrs struct {
			City string `json:"city"`
		}
		_ = json.Unmarshal(ct.Attributes, &attrs) // a non-string city is left out
		names := make([]string, len(ct.Segments))
		for i, s := range ct.Segments {
			names[i] = s.Name
		}
		if err := w.Write([]string{ct.Phone, deref(ct.Name), deref(ct.Email), attrs.City, joinSegments(names)}); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "exported %d contacts, from %d changes in %d pages of the feed\n", len(contacts), changes, pages)
	return nil
}

// byPhone returns the contacts ordered by phone, a stable order a diff of two
// exports can follow (phones are unique in a workspace; the ID breaks a tie a
// mirror may hold for a moment, when one contact took another's former phone).
func byPhone(contacts map[string]contact) []contact {
	out := make([]contact, 0, len(contacts))
	for _, ct := range contacts {
		out = append(out, ct)
	}
	slices.SortFunc(out, func(a, b contact) int {
		return cmp.Or(strings.Compare(a.Phone, b.Phone), strings.Compare(a.ID, b.ID))
	})
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// nullIfEmpty maps an empty CSV cell to null, which removes the attribute.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
