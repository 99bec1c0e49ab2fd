package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segments/segments/internal/globalid"
)

// dataset is what the workloads need to know of the loaded data.
type dataset struct {
	ws           int64
	firstContact int64
	contacts     int
	big          []int64  // the ten largest segments
	sized        []int64  // segments of every size, smallest first (W9)
	rareTerms    []string // terms that each find about one contact
	segTerms     []string // terms that find a handful of segments
	cursors      []position
	pglCursor    []any // a PostGraphile cursor of contacts by CREATED_AT_DESC, decoded
}

type position struct {
	id        int64
	createdAt time.Time
}

// variants is how many different requests a read workload cycles through: the same
// ones for every contender (and one pgbench script each; pgbench takes at most 128).
const variants = 100

func loadDataset(ctx context.Context, db *sql.DB, ws int64, seed uint64) (*dataset, error) {
	d := &dataset{ws: ws}
	if err := db.QueryRowContext(ctx, `SELECT min(id), count(*) FROM contacts WHERE workspace_id = $1`, ws).
		Scan(&d.firstContact, &d.contacts); err != nil {
		return nil, err
	}
	var err error
	d.big, err = queryIDs(ctx, db, `SELECT id FROM segments WHERE workspace_id = $1 ORDER BY contact_count DESC, id LIMIT 10`, ws)
	if err != nil {
		return nil, err
	}
	if len(d.big) < 4 {
		return nil, fmt.Errorf("the dataset has %d segments; W8 needs 4", len(d.big))
	}
	// W9's segments: of the segments by size, every nth, so that their sizes run
	// from the smallest to the largest as the dataset's do.
	d.sized, err = queryIDs(ctx, db, `SELECT id FROM (
		SELECT id, row_number() OVER (ORDER BY contact_count, id) AS r, count(*) OVER () AS n
		FROM segments WHERE workspace_id = $1) s
		WHERE (r - 1) % greatest(n / $2, 1) = 0 ORDER BY r LIMIT $2`, ws, variants)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 5))
	// Random contacts: their positions (W3 cursors) and the tags of their emails
	// (W4, W5: rare terms; the generator makes each tag unique).
	for len(d.cursors) < variants || len(d.rareTerms) < variants {
		id := d.firstContact + int64(rng.IntN(d.contacts))
		var p position
		var email sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT id, created_at, email FROM contacts WHERE workspace_id = $1 AND id = $2`, ws, id).
			Scan(&p.id, &p.createdAt, &email); err != nil {
			return nil, err
		}
		if len(d.cursors) < variants {
			d.cursors = append(d.cursors, p)
		}
		if email.Valid && len(d.rareTerms) < variants {
			local, _, _ := strings.Cut(email.String, "@")
			parts := strings.Split(local, ".")
			d.rareTerms = append(d.rareTerms, parts[len(parts)-1])
		}
	}
	d.segTerms = []string{"buyers", "loyal", "subscri", "pune", "vip", "dormant visitors", "readers", "festival", "mumbai", "leads"}
	return d, nil
}

// queryIDs returns the IDs that query selects, in order.
func queryIDs(ctx context.Context, db *sql.DB, query string, args ...any) ([]int64, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// gql is a GraphQL request body.
func gql(query string, vars map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return b
}

func sid(id int64) string { return globalid.Encode(globalid.Segment, id) }
func cid(id int64) string { return globalid.Encode(globalid.Contact, id) }

// oursCursor is the cursor our API gives the contact at p in its default order
// (created_at descending). Clients must not build cursors; the benchmark does, to
// start pages at random depths, and fails loudly if the format changes (the server
// then answers BAD_USER_INPUT).
func oursCursor(p position) string {
	b, _ := json.Marshal(map[string]any{"l": "c", "k": "created_at", "v": p.createdAt.UTC().Format(time.RFC3339Nano), "i": p.id})
	return base64.RawURLEncoding.EncodeToString(b)
}

// pglCursor is PostGraphile's cursor of the contact at p in CREATED_AT_DESC order,
// made from one it returned: ["<order hash>", "<created_at>", "<workspace>", "<id>"].
func (d *dataset) pglCursorAt(p position) string {
	c := append([]any(nil), d.pglCursor...)
	c[1] = p.createdAt.UTC().Format("2006-01-02T15:04:05.000000+00:00")
	c[2] = strconv.FormatInt(d.ws, 10)
	c[3] = strconv.FormatInt(p.id, 10)
	b, _ := json.Marshal(c)
	return base64.StdEncoding.EncodeToString(b)
}

// pair is one request of a workload, as each GraphQL contender sends it.
type pair struct{ ours, pgl []byte }

// readVariants returns the requests of a read workload, the same for every run.
func (d *dataset) readVariants(w string) []pair {
	ws := strconv.FormatInt(d.ws, 10)
	out := make([]pair, variants)
	for i := range out {
		switch w {
		case "W1":
			// The dashboard's segment list: newest first, 50, with counts. The same
			// page each time: the first.
			out[i] = pair{
				gql(`query { segments(first: 50) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`, nil),
				gql(`query($ws: BigInt!) { allSegments(first: 50, condition: {workspaceId: $ws}, orderBy: [CREATED_AT_DESC]) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"ws": ws}),
			}
		case "W2":
			t := d.segTerms[i%len(d.segTerms)]
			out[i] = pair{
				gql(`query($t: String!) { segments(first: 50, search: $t) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"t": t}),
				gql(`query($ws: BigInt!, $t: String!) { allSegments(first: 50, condition: {workspaceId: $ws}, orderBy: [CREATED_AT_DESC], filter: {search: {includesInsensitive: $t}}) { nodes { id name description contactCount createdAt } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"ws": ws, "t": t}),
			}
		case "W3":
			// The contacts table: 50 contacts from a random depth, each with its
			// segments.
			p := d.cursors[i]
			out[i] = pair{
				gql(`query($after: String) { contacts(first: 50, after: $after) { edges { cursor node { id name phone email attributes segments { id name } } } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"after": oursCursor(p)}),
				gql(`query($ws: BigInt!, $after: Cursor) { allContacts(first: 50, after: $after, condition: {workspaceId: $ws}, orderBy: [CREATED_AT_DESC]) { edges { cursor node { id name phone email attributes membershipsByWorkspaceIdAndContactId { nodes { segmentByWorkspaceIdAndSegmentId { id name } } } } } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"ws": ws, "after": d.pglCursorAt(p)}),
			}
		case "W4", "W5", "W10":
			t, total := d.rareTerms[i], ""
			if w == "W5" {
				total = "totalCount "
			}
			out[i] = pair{
				gql(`query($t: String!) { contacts(first: 50, search: $t) { `+total+`nodes { id name phone email } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"t": t}),
				gql(`query($ws: BigInt!, $t: String!) { allContacts(first: 50, condition: {workspaceId: $ws}, orderBy: [CREATED_AT_DESC], filter: {search: {includesInsensitive: $t}}) { `+total+`nodes { id name phone email } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"ws": ws, "t": t}),
			}
		case "W9":
			// The dashboard's page of a segment: its 50 newest contacts, for
			// segments of every size.
			seg := d.sized[i%len(d.sized)]
			out[i] = pair{
				gql(`query($id: ID!) { segment(id: $id) { contacts(first: 50) { nodes { id name phone email } pageInfo { hasNextPage endCursor } } } }`,
					map[string]any{"id": sid(seg)}),
				gql(`query($ws: BigInt!, $seg: BigInt!) { allContacts(first: 50, condition: {workspaceId: $ws}, orderBy: [CREATED_AT_DESC], filter: {membershipsByWorkspaceIdAndContactId: {some: {segmentId: {equalTo: $seg}}}}) { nodes { id name phone email } pageInfo { hasNextPage endCursor } } }`,
					map[string]any{"ws": ws, "seg": strconv.FormatInt(seg, 10)}),
			}
		case "W8":
			// A campaign audience: contacts in any of 3 big segments but not in a 4th.
			perm := rand.New(rand.NewPCG(uint64(i), 8)).Perm(len(d.big))
			anyOf := []int64{d.big[perm[0]], d.big[perm[1]], d.big[perm[2]]}
			none := d.big[perm[3]]
			out[i] = pair{
				gql(`query($any: [ID!], $none: [ID!]) { contacts(filter: {segments: {any: $any, none: $none}}) { totalCount } }`,
					map[string]any{"any": []string{sid(anyOf[0]), sid(anyOf[1]), sid(anyOf[2])}, "none": []string{sid(none)}}),
				gql(`query($ws: BigInt!, $any: [BigInt!], $none: BigInt!) { allContacts(condition: {workspaceId: $ws}, filter: {membershipsByWorkspaceIdAndContactId: {some: {segmentId: {in: $any}}, none: {segmentId: {equalTo: $none}}}}) { totalCount } }`,
					map[string]any{"ws": ws, "any": []string{strconv.FormatInt(anyOf[0], 10), strconv.FormatInt(anyOf[1], 10), strconv.FormatInt(anyOf[2], 10)}, "none": strconv.FormatInt(none, 10)}),
			}
		}
	}
	return out
}

// Writes. W6 adds 100 contacts to 10 segments; each request, the floor's replay
// included, draws them from a random r by the formulas below, so every request adds
// new memberships (to scratch segments made for the run and deleted
// after it, so that the dataset stays as loaded).
const (
	w6Contacts  = 100
	w6Segments  = 10
	w6Scratch   = 1000 // scratch segments of a W6 run
	contactStep = 7919 // prime: c_k = first + (r + k*step) mod contacts are distinct
	segmentStep = 7    // prime to w6Scratch
)

// assignIDs returns the contacts and segments of a W6 request.
func (d *dataset) assignIDs(r, q int, scratch []int64, nContacts, nSegments int) ([]int64, []int64) {
	cs := make([]int64, nContacts)
	for k := range cs {
		cs[k] = d.firstContact + int64((r+k*contactStep)%d.contacts)
	}
	ss := make([]int64, nSegments)
	for k := range ss {
		ss[k] = scratch[(q+k*segmentStep)%len(scratch)]
	}
	return cs, ss
}

// w6SharedSegments is the probability that two W6 requests share a segment, by
// assignIDs' own formula: each starts at a random one of the w6Scratch segments and
// takes w6Segments of them segmentStep apart. Concurrent requests that share one
// meet at its row lock and its bitmaps' chunks; W6 makes them rare.
func w6SharedSegments() float64 {
	scratch := make([]int64, w6Scratch)
	for i := range scratch {
		scratch[i] = int64(i)
	}
	d := &dataset{contacts: 1}
	_, first := d.assignIDs(0, 0, scratch, 1, w6Segments)
	shared := 0
	for q := range w6Scratch {
		_, ss := d.assignIDs(0, q, scratch, 1, w6Segments)
		if slices.ContainsFunc(ss, func(s int64) bool { return slices.Contains(first, s) }) {
			shared++
		}
	}
	return float64(shared) / w6Scratch
}

func (d *dataset) assignRequest(cs, ss []int64) pair {
	cg, sg := make([]string, len(cs)), make([]string, len(ss))
	cn, sn := make([]string, len(cs)), make([]string, len(ss))
	for i, c := range cs {
		cg[i], cn[i] = cid(c), strconv.FormatInt(c, 10)
	}
	for i, s := range ss {
		sg[i], sn[i] = sid(s), strconv.FormatInt(s, 10)
	}
	return pair{
		gql(`mutation($in: AssignContactsToSegmentsInput!) { assignContactsToSegments(input: $in) { assignedCount userErrors { field message code } } }`,
			map[string]any{"in": map[string]any{"contactIds": cg, "segmentIds": sg}}),
		gql(`mutation($in: SegbenchAssignContactsToSegmentsInput!) { segbenchAssignContactsToSegments(input: $in) { result } }`,
			map[string]any{"in": map[string]any{"workspaceId": strconv.FormatInt(d.ws, 10), "contactIds": cn, "segmentIds": sn}}),
	}
}

// workloadTitles describe the workloads for the report.
var workloadTitles = map[string]string{
	"W1":  "segment list page (50, with contactCount)",
	"W2":  "segment search",
	"W3":  "contacts page (50) with each contact's segments, random cursors",
	"W4":  "contact search, rare terms",
	"W5":  "W4 with totalCount",
	"W6":  "assign 100 contacts × 10 segments",
	"W7":  "bulk assignment 10,000 × 100 (1M pairs)",
	"W8":  "audience count: any 3 big segments, none 1",
	"W9":  "segment page: 50 newest contacts of a segment, segments of every size",
	"W10": "W4 during a sync: contact search while 500 contacts a second are updated",
	"W11": "contact sync: 20 upserts of 1,000 contacts, 500 new and 500 changed each",
}
