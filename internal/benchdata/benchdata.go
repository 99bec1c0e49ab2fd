// Package benchdata generates the benchmark dataset of issue #5 and bulk-loads it into
// a new workspace: by default 1,000,000 contacts, 1,000 segments and 5,000,000
// memberships, ten segments of 100,000 members and the rest skewed (a few large
// segments, a long tail of small ones). The same options and seed give the same data.
//
// # SQL outside the store
//
// The store (internal/store) is the only package of the service that writes SQL. This
// package is the one exception, and it is a development tool, not part of the API: a
// bulk loader works beneath the store's invariants on purpose. In one transaction it
// takes the three tenant tables' locks, drops the secondary indexes and constraints of
// contacts and memberships and disables the insert triggers that maintain
// segments.contact_count, segment_bitmaps and contact_counts and check memberships'
// references, loads the rows with COPY, then recreates every index and constraint from
// the definitions it read from the catalog before dropping them (so the
// workspace-leading keys stay exactly as migrated), re-enables the triggers, backfills
// contact_count and the bitmaps from the memberships and contact_counts from the
// contacts, and commits. Since all of that is one transaction holding ACCESS EXCLUSIVE
// locks, no other session can change contacts or memberships while the triggers are off
// (no other workspace's counters or bitmaps can drift), and a failed load leaves
// nothing behind: triggers, indexes and constraints are back as they were. A VACUUM
// ANALYZE after the commit sets the visibility map (index-only scans) and the planner
// statistics, as a long-lived database would have them.
//
// The load blocks every other writer and reader of those tables while it runs (about a
// minute at the default size on 2 cores): run it on a benchmark database, not on one
// that serves traffic.
package benchdata

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
)

// Options size the dataset. Zero values are filled in by Fill, scaled from Contacts.
type Options struct {
	// Workspace is the name of the workspace to create.
	Workspace string
	// Contacts is the number of contacts (default 1,000,000; at most 100,000,000).
	Contacts int
	// Segments is the number of segments (default 1,000).
	Segments int
	// Memberships is the number of (segment, contact) pairs (default 5 per contact).
	Memberships int
	// BigSegments segments get BigSize members each (default 10 of Contacts/10).
	BigSegments int
	BigSize     int
	// Seed makes the data: the same seed and sizes give the same rows.
	Seed uint64
	// filled is set by Fill: the zeros of filled options are sizes of 0, which a
	// caller may set after Fill (bench-data --big-segments 0), not unset ones.
	filled bool
}

// DefaultWorkspace is the name of the workspace Load creates when none is given.
const DefaultWorkspace = "Bench"

// Fill returns o with every unset (zero) size filled in: the default sizes, or the
// default proportions of Contacts when only that is set. Options already filled are
// returned as they are, so that a size set to 0 after Fill stays 0 (Load fills too).
func (o Options) Fill() Options {
	if o.filled {
		return o
	}
	o.filled = true
	if o.Workspace == "" {
		o.Workspace = DefaultWorkspace
	}
	if o.Contacts == 0 {
		o.Contacts = 1_000_000
	}
	if o.Segments == 0 {
		o.Segments = 1000
	}
	if o.Memberships == 0 {
		o.Memberships = 5 * o.Contacts
	}
	if o.BigSegments == 0 {
		o.BigSegments = min(10, o.Segments)
	}
	if o.BigSize == 0 {
		o.BigSize = o.Contacts / 10
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	return o
}

// Check reports sizes that cannot be generated.
func (o Options) Check() error {
	switch {
	case o.Contacts < 1 || o.Contacts > 100_000_000:
		return fmt.Errorf("benchdata: contacts must be 1 to 100,000,000, not %d", o.Contacts)
	case o.Segments < 1:
		return fmt.Errorf("benchdata: segments must be at least 1, not %d", o.Segments)
	case o.BigSegments < 0 || o.BigSegments > o.Segments:
		return fmt.Errorf("benchdata: big segments must be 0 to %d (segments), not %d", o.Segments, o.BigSegments)
	case o.BigSize < 0 || o.BigSize > o.Contacts:
		return fmt.Errorf("benchdata: big segment size must be 0 to %d (contacts), not %d", o.Contacts, o.BigSize)
	case o.Memberships < o.BigSegments*o.BigSize:
		return fmt.Errorf("benchdata: %d memberships cannot fill %d big segments of %d", o.Memberships, o.BigSegments, o.BigSize)
	}
	rest, small := o.Memberships-o.BigSegments*o.BigSize, o.Segments-o.BigSegments
	if rest > 0 && (small == 0 || rest > small*o.smallCap()) {
		return fmt.Errorf("benchdata: %d memberships do not fit: the %d other segments hold at most %d each", o.Memberships, small, o.smallCap())
	}
	return nil
}

// smallCap is the most members a segment other than the big ones gets: half a big one,
// so that the big ones stay the biggest.
func (o Options) smallCap() int {
	return max(1, min(o.Contacts, max(o.BigSize/2, 1)))
}

// Sizes returns the member count of each segment, in segment order: the big segments
// first, then the skewed rest (Zipf-like weights 1/(k+10), capped at half a big
// segment). Their sum is o.Memberships.
func (o Options) Sizes() []int {
	sizes := make([]int, o.Segments)
	for i := range o.BigSegments {
		sizes[i] = o.BigSize
	}
	rest := o.Memberships - o.BigSegments*o.BigSize
	small := sizes[o.BigSegments:]
	if len(small) == 0 || rest <= 0 {
		return sizes
	}
	limit := o.smallCap()
	// Water-filling: segments at the cap keep it, the remainder is spread over the
	// others by weight, until it all fits.
	capped := make([]bool, len(small))
	for left := rest; left > 0; {
		var w float64
		for k := range small {
			if !capped[k] {
				w += 1 / float64(k+10)
			}
		}
		progress := false
		for k := range small {
			if capped[k] {
				continue
			}
			add := int(math.Floor(float64(left) / w / float64(k+10)))
			if small[k]+add >= limit {
				add, capped[k] = limit-small[k], true
			}
			small[k] += add
			if add > 0 {
				progress = true
			}
		}
		left = rest
		for _, n := range small {
			left -= n
		}
		if !progress || left < len(small) {
			// Rounding leftovers: one more member each, largest first.
			for k := 0; left > 0; k = (k + 1) % len(small) {
				if small[k] < limit {
					small[k]++
					left--
				}
			}
			break
		}
	}
	return sizes
}

// Result is what Load made.
type Result struct {
	Workspace crm.Workspace
	// Key is a new read_write API key of the workspace.
	Key auth.Key
	// FirstContactID is the ID of the first contact; the contacts' IDs are
	// FirstContactID to FirstContactID+Contacts-1, in creation order.
	FirstContactID int64
	// SegmentIDs are the segments' IDs, in the order of Options.Sizes (big ones first).
	SegmentIDs  []int64
	Options     Options
	Memberships int
	// Phases times the steps of the load.
	Phases []Phase
	// Elapsed is the whole load, VACUUM ANALYZE included.
	Elapsed time.Duration
}

// Phase is one timed step of Load.
type Phase struct {
	Name    string        `json:"name"`
	Elapsed time.Duration `json:"elapsed"`
}

// Load creates a workspace named o.Workspace with its API key and fills it with the
// dataset of o (see Fill), through s's connection pool. log gets one line per phase.
func Load(ctx context.Context, s *store.Store, o Options, log *slog.Logger) (Result, error) {
	o = o.Fill()
	if err := o.Check(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	key, err := auth.NewKey()
	if err != nil {
		return Result{}, err
	}
	ws, err := s.CreateWorkspace(ctx, o.Workspace, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix(), Name: "bench-data"})
	if err != nil {
		return Result{}, err
	}
	res := Result{Workspace: ws, Key: key, Options: o}
	phase := func(name string, t0 time.Time) {
		d := time.Since(t0)
		res.Phases = append(res.Phases, Phase{Name: name, Elapsed: d})
		log.Info("bench-data: "+name, "elapsed", d.Round(time.Millisecond))
	}

	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	err = inPgxTx(ctx, conn, func(tx pgx.Tx) error {
		return load(ctx, tx, ws.ID, o, &res, phase)
	})
	if err != nil {
		return Result{}, fmt.Errorf("benchdata: %w", err)
	}
	t0 := time.Now()
	// Outside the transaction: VACUUM cannot run in one. It sets the visibility map,
	// so index-only scans skip the heap, and gathers the planner's statistics.
	if _, err := conn.ExecContext(ctx, "VACUUM (ANALYZE) segments, contacts, memberships, segment_bitmaps"); err != nil {
		return Result{}, fmt.Errorf("benchdata: vacuum: %w", err)
	}
	phase("vacuum analyze", t0)
	res.Elapsed = time.Since(start)
	return res, nil
}

// inPgxTx runs fn in a transaction of conn's pgx connection, which commits when fn
// returns nil and rolls back otherwise.
func inPgxTx(ctx context.Context, conn *sql.Conn, fn func(pgx.Tx) error) error {
	return conn.Raw(func(dc any) error {
		// The pool's connections are pgx's (possibly wrapped by the store, which keeps
		// Conn): COPY needs pgx itself.
		pc := dc.(interface{ Conn() *pgx.Conn }).Conn()
		return pgx.BeginTxFunc(ctx, pc, pgx.TxOptions{}, fn)
	})
}

// NeighbourPrefix starts the names of the workspaces LoadNeighbours adds: "Neighbour
// 1", "Neighbour 2", ...
const NeighbourPrefix = "Neighbour "

// Neighbour is the dataset of each workspace LoadNeighbours adds, a small business:
// 150 contacts, 10 segments (one of 60 members) and 300 memberships.
var Neighbour = Options{Contacts: 150, Segments: 10, Memberships: 300, BigSegments: 1, BigSize: 60}

// LoadNeighbours makes the database hold n small workspaces (NeighbourPrefix 1 to n,
// each the Neighbour dataset, seeded by seed and its number) beside the others. It
// loads those it does not hold yet and returns how many it loaded.
//
// Why: a service of many businesses keeps them all in the same tables. PostgreSQL's
// statistics then see a large workspace as one of many, and the plans it keeps
// without knowing the workspace (PL/pgSQL's generic plans) expect the average one,
// which is small. A database of the benchmark's workspace alone is its own average:
// two statements that read a large workspace's every row in such a database never
// showed there (migrations 20261203000002 and 20261203000003).
//
// Each neighbour is written as the API writes, with the tables' triggers on, in a
// transaction of its own: 2,000 took 64 s beside the 1M-contact dataset. It leaves
// the VACUUM ANALYZE to its caller, who runs one anyway (Load after it, segbench
// before it measures); one of the whole tables took 7 s more there.
func LoadNeighbours(ctx context.Context, s *store.Store, n int, seed uint64, log *slog.Logger) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	start := time.Now()
	held, err := neighbours(ctx, s.DB())
	if err != nil {
		return 0, err
	}
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	loaded := 0
	for k := 1; k <= n; k++ {
		name := NeighbourPrefix + strconv.Itoa(k)
		if held[name] {
			continue
		}
		o := Neighbour
		o.Workspace, o.Seed = name, seed<<20+uint64(k)
		key, err := auth.NewKey()
		if err != nil {
			return loaded, err
		}
		ws, err := s.CreateWorkspace(ctx, name, store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix(), Name: "bench-data"})
		if err != nil {
			return loaded, err
		}
		err = inPgxTx(ctx, conn, func(tx pgx.Tx) error {
			return copyRows(ctx, tx, ws.ID, o.Fill(), &Result{}, func(string, time.Time) {})
		})
		if err != nil {
			return loaded, fmt.Errorf("benchdata: neighbour %d: %w", k, err)
		}
		if loaded++; loaded%500 == 0 {
			log.Info("bench-data: neighbours", "loaded", loaded, "elapsed", time.Since(start).Round(time.Millisecond))
		}
	}
	log.Info("bench-data: neighbours loaded", "loaded", loaded, "held", n, "elapsed", time.Since(start).Round(time.Millisecond))
	return loaded, nil
}

// neighbours returns the names of the neighbours (LoadNeighbours) db holds.
func neighbours(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM workspaces w
		WHERE starts_with(name, $1) AND EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = w.id)`, NeighbourPrefix)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		held[name] = true
	}
	return held, rows.Err()
}

// droppable is an index or constraint Load drops during the load and recreates after.
type droppable struct {
	table, name, def string
	constraint       bool
	kind             string // constraints: p, u, f
}

// tablesLoaded are the tables whose indexes and constraints are dropped during the
// load. Segments keeps its own: a thousand rows.
var tablesLoaded = []string{"contacts", "memberships"}

// insertTriggers are the triggers that derive data from inserted rows (the segments'
// contact_count and bitmaps from memberships, the workspace's contact_counts from
// contacts), by table, and the memberships' reference check; the load backfills the
// three derived ones instead, once. (A statement-level trigger would also keep a copy
// of the million rows the COPY inserts, its transition table.)
var insertTriggers = [][2]string{
	{"memberships", "memberships_count_inserted"}, {"memberships", "memberships_bitmaps_inserted"},
	{"contacts", "contacts_count_inserted"},
	// The memberships' reference check would lock every loaded contact; the load
	// makes each membership from a contact and a segment it has just written.
	{"memberships", "memberships_a_references_inserted"},
	// The feed of memberships would record every loaded membership (5M IDs, and a
	// transition table of them): a mirror's sync from the start lists them anyway.
	{"memberships", "memberships_feed_inserted"},
}

func load(ctx context.Context, tx pgx.Tx, ws int64, o Options, res *Result, phase func(string, time.Time)) error {
	exec := func(sql string, args ...any) error {
		_, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", firstLine(sql), err)
		}
		return nil
	}
	t0 := time.Now()
	// The role may carry the server's statement timeout (15 s): index builds take longer.
	for _, set := range []string{
		"SET LOCAL statement_timeout = 0",
		"SET LOCAL idle_in_transaction_session_timeout = 0",
		"SET LOCAL lock_timeout = '30s'",
		"SET LOCAL maintenance_work_mem = '1GB'",
		"SET LOCAL synchronous_commit = off",
		// The order every writer of the API locks in: segments, then memberships.
		"LOCK TABLE segments, contacts, memberships IN ACCESS EXCLUSIVE MODE",
	} {
		if err := exec(set); err != nil {
			return err
		}
	}
	// What to drop, read from the catalog: constraints first (foreign keys, then the
	// primary and unique keys they may need), then plain indexes.
	var drops []droppable
	rows, err := tx.Query(ctx, `
		SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype::text
		FROM pg_constraint c
		WHERE c.conrelid = ANY($1::text[]::regclass[])
		  AND (c.contype = 'f' OR (c.contype IN ('p', 'u') AND c.conrelid = 'memberships'::regclass)
		       OR (c.contype = 'u' AND c.conrelid = 'contacts'::regclass))
		ORDER BY c.contype = 'f' DESC, c.conrelid::regclass::text, c.conname`, tablesLoaded)
	if err != nil {
		return err
	}
	for rows.Next() {
		d := droppable{constraint: true}
		if err := rows.Scan(&d.table, &d.name, &d.def, &d.kind); err != nil {
			return err
		}
		drops = append(drops, d)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `
		SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
		FROM pg_index i
		WHERE i.indrelid = ANY($1::text[]::regclass[])
		  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
		ORDER BY 1, 2`, tablesLoaded)
	if err != nil {
		return err
	}
	for rows.Next() {
		var d droppable
		if err := rows.Scan(&d.table, &d.name, &d.def); err != nil {
			return err
		}
		drops = append(drops, d)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range drops {
		q := "DROP INDEX " + pgx.Identifier{d.name}.Sanitize()
		if d.constraint {
			q = "ALTER TABLE " + pgx.Identifier{d.table}.Sanitize() + " DROP CONSTRAINT " + pgx.Identifier{d.name}.Sanitize()
		}
		if err := exec(q); err != nil {
			return err
		}
	}
	for _, t := range insertTriggers {
		if err := exec("ALTER TABLE " + t[0] + " DISABLE TRIGGER " + t[1]); err != nil {
			return err
		}
	}
	phase(fmt.Sprintf("drop %d indexes and constraints, disable the insert triggers", len(drops)), t0)

	if err := copyRows(ctx, tx, ws, o, res, phase); err != nil {
		return err
	}

	// Recreate, in the reverse order: keys before the foreign keys that need them.
	for i := len(drops) - 1; i >= 0; i-- {
		d := drops[i]
		t0 = time.Now()
		q := d.def
		if d.constraint {
			q = "ALTER TABLE " + pgx.Identifier{d.table}.Sanitize() + " ADD CONSTRAINT " + pgx.Identifier{d.name}.Sanitize() + " " + d.def
		}
		if err := exec(q); err != nil {
			return err
		}
		phase("recreate "+d.name, t0)
	}
	t0 = time.Now()
	// Statistics of the rows just copied, for the backfill's plans. Without them a
	// database that already holds a dataset plans this workspace on the others'
	// statistics, which know none of its rows: the UPDATE of the segments' counts
	// below then ran the memberships' aggregate once per segment (195 s for 1M
	// memberships beside 2M contacts; the whole backfill 3-5 s with them). ANALYZE
	// in the transaction samples its own uncommitted rows. Not contacts: only a
	// count of this workspace's reads them, and their ANALYZE takes seconds
	// (search_text's statistics target of 1,000 samples 300,000 rows).
	if err := exec("ANALYZE segments, memberships"); err != nil {
		return err
	}
	phase("analyze", t0)
	t0 = time.Now()
	for _, t := range insertTriggers {
		if err := exec("ALTER TABLE " + t[0] + " ENABLE TRIGGER " + t[1]); err != nil {
			return err
		}
	}
	// The counters and the bitmaps, from the rows themselves.
	if err := exec(`INSERT INTO contact_counts (workspace_id, slot, n)
		SELECT $1::bigint, 0, count(*) FROM contacts WHERE workspace_id = $1`, ws); err != nil {
		return err
	}
	if err := exec(`
		UPDATE segments s SET contact_count = m.n
		FROM (SELECT segment_id, count(*) AS n FROM memberships WHERE workspace_id = $1 GROUP BY segment_id) m
		WHERE s.workspace_id = $1 AND s.id = m.segment_id`, ws); err != nil {
		return err
	}
	if err := exec(`
		INSERT INTO segment_bitmaps (workspace_id, segment_id, chunk, bits)
		SELECT $1, c.segment_id, c.chunk, c.bits
		FROM (SELECT array_agg(segment_id) AS s, array_agg(contact_id) AS c FROM memberships WHERE workspace_id = $1) m,
		     segment_bitmap_chunks(m.s, m.c) c`, ws); err != nil {
		return err
	}
	phase("enable the insert triggers, backfill the counters and the segment bitmaps", t0)
	return nil
}

// copyRows writes o's rows into workspace ws with COPY, its segments, contacts and
// memberships, with IDs it reserves from their sequences, and notes them in res; phase
// times its steps. The tables' triggers do what they are set to: Load
// disables the insert triggers and backfills once, LoadNeighbours leaves them on.
func copyRows(ctx context.Context, tx pgx.Tx, ws int64, o Options, res *Result, phase func(string, time.Time)) error {
	// IDs: reserve a block of each sequence (nothing else inserts: Load holds the
	// tables' locks, and a benchmark database serves nothing else), so that the
	// generator knows every ID and memberships can be written in primary-key order.
	reserve := func(table string, n int) (int64, error) {
		var first int64
		err := tx.QueryRow(ctx, `SELECT setval(pg_get_serial_sequence($1, 'id'), nextval(pg_get_serial_sequence($1, 'id')) + $2 - 1) - $2 + 1`,
			table, n).Scan(&first)
		return first, err
	}
	firstSegment, err := reserve("segments", o.Segments)
	if err != nil {
		return err
	}
	firstContact, err := reserve("contacts", o.Contacts)
	if err != nil {
		return err
	}
	res.FirstContactID = firstContact
	res.SegmentIDs = make([]int64, o.Segments)
	for i := range res.SegmentIDs {
		res.SegmentIDs[i] = firstSegment + int64(i)
	}
	g := newGenerator(o, ws, firstContact, firstSegment)

	t0 := time.Now()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"segments"},
		[]string{"workspace_id", "id", "name", "description", "contact_count", "created_at", "updated_at"},
		g.segments()); err != nil {
		return fmt.Errorf("copy segments: %w", err)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"contacts"},
		[]string{"workspace_id", "id", "phone", "name", "email", "attributes", "created_at", "updated_at"},
		g.contacts())
	if err != nil {
		return fmt.Errorf("copy contacts: %w", err)
	}
	phase(fmt.Sprintf("copy %d segments and %d contacts", o.Segments, n), t0)
	t0 = time.Now()
	n, err = tx.CopyFrom(ctx, pgx.Identifier{"memberships"}, []string{"workspace_id", "segment_id", "contact_id"}, g.memberships())
	if err != nil {
		return fmt.Errorf("copy memberships: %w", err)
	}
	res.Memberships = int(n)
	phase(fmt.Sprintf("copy %d memberships", n), t0)
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// generator makes the rows. Every value is a function of the options, the seed and
// the row's position, so the rows are the same on every run.
type generator struct {
	o                          Options
	ws, firstContact, firstSeg int64
	sizes                      []int
}

func newGenerator(o Options, ws, firstContact, firstSeg int64) *generator {
	return &generator{o: o, ws: ws, firstContact: firstContact, firstSeg: firstSeg, sizes: o.Sizes()}
}

// Epoch is when the first contact and the first segment were created; contact i was
// created ContactInterval later than contact i-1.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ContactInterval separates the creation times of consecutive contacts.
const ContactInterval = 30 * time.Second

var (
	firstNames = strings.Fields("Aarav Vivaan Aditya Vihaan Arjun Sai Reyansh Ayaan Krishna Ishaan Ananya Diya Aadhya Saanvi Pari Anika Navya Myra Sara Ira Rohan Kabir Meera Priya Neha Rahul Pooja Amit Sneha Vikram Kavya Riya Farhan Zoya Imran Gurpreet Harpreet Lakshmi Venkat Deepa")
	lastNames  = strings.Fields("Sharma Verma Patel Reddy Iyer Nair Gupta Singh Khan Das Bose Mehta Joshi Kulkarni Menon Rao Chopra Malhotra Banerjee Mukherjee Shaikh Pillai Gill Sethi Kapoor")
	cities     = strings.Fields("Mumbai Delhi Bengaluru Hyderabad Chennai Kolkata Pune Ahmedabad Jaipur Lucknow Kochi Indore")
	languages  = strings.Fields("hi en mr ta te bn gu kn ml pa")
	domains    = strings.Fields("gmail.com yahoo.co.in outlook.com rediffmail.com")
	bigNames   = []string{"VIP Users", "Festival Buyers", "Newsletter Subscribers", "Hindi Speakers", "Inactive 90 Days",
		"High Value Customers", "New Signups", "Cart Abandoners", "Mumbai Customers", "Repeat Buyers"}
	adjectives = strings.Fields("Loyal Dormant Premium Weekend Early Late Frequent Occasional Seasonal Regional Urban Rural Young Senior Returning")
	nouns      = strings.Fields("Buyers Shoppers Subscribers Readers Visitors Members Leads Customers Fans Browsers")
)

// mix is a 64-bit hash (splitmix64's finalizer): a value per (seed, position).
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// SegmentName returns the name of segment k (0-based, in the order of Sizes).
func SegmentName(k, big int) string {
	if k < big {
		if k < len(bigNames) {
			return bigNames[k]
		}
		return fmt.Sprintf("Big Segment %d", k+1)
	}
	return fmt.Sprintf("%s %s %04d", adjectives[k%len(adjectives)], nouns[(k/len(adjectives))%len(nouns)], k+1)
}

func (g *generator) segments() pgx.CopyFromSource {
	k := -1
	return copyFunc(func() bool { k++; return k < g.o.Segments }, func() ([]any, error) {
		h := mix(g.o.Seed<<32 ^ uint64(k) ^ 0x5e9)
		var desc any
		if h%4 != 0 {
			desc = fmt.Sprintf("Contacts tagged %q by the %s campaign team", strings.ToLower(SegmentName(k, g.o.BigSegments)), cities[h%uint64(len(cities))])
		}
		created := Epoch.Add(time.Duration(k) * time.Hour)
		return []any{g.ws, g.firstSeg + int64(k), SegmentName(k, g.o.BigSegments), desc, int64(0), created, created}, nil
	})
}

// phoneDigits returns 8 digits unique per contact position i (< 10^8): an affine
// permutation of 0..10^8-1 with a multiplier prime to 10.
func phoneDigits(i int, seed uint64) uint64 {
	const m = 100_000_000
	return (uint64(i)*73_856_093 + seed*1_000_003) % m
}

// emailTag returns 6 base-36 characters unique per contact position: a term that
// finds one contact, for rare-term searches.
func emailTag(i int, seed uint64) string {
	const m = 2_176_782_336 // 36^6
	v := (uint64(i)*1_295_036_033 + seed*7_919) % m
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [6]byte
	for j := 5; j >= 0; j-- {
		b[j] = digits[v%36]
		v /= 36
	}
	return string(b[:])
}

func (g *generator) contacts() pgx.CopyFromSource {
	i := -1
	var attrs []byte
	return copyFunc(func() bool { i++; return i < g.o.Contacts }, func() ([]any, error) {
		h := mix(g.o.Seed ^ uint64(i)<<8)
		first, last := firstNames[h%uint64(len(firstNames))], lastNames[(h>>8)%uint64(len(lastNames))]
		var name, email any
		if (h>>16)%25 != 0 { // 4% have no name
			name = first + " " + last
		}
		if (h>>24)%7 != 0 { // 1 in 7 have no email
			email = strings.ToLower(first) + "." + strings.ToLower(last) + "." + emailTag(i, g.o.Seed) + "@" + domains[(h>>32)%uint64(len(domains))]
		}
		attrs = fmt.Appendf(attrs[:0], `{"city": %q, "orders": %d, "language": %q}`,
			cities[(h>>36)%uint64(len(cities))], (h>>44)%40, languages[(h>>52)%uint64(len(languages))])
		created := Epoch.Add(time.Duration(i) * ContactInterval)
		updated := created
		if (h>>56)%5 == 0 {
			updated = created.Add(time.Duration((h>>40)%(90*24)) * time.Hour)
		}
		return []any{g.ws, g.firstContact + int64(i), fmt.Sprintf("+9198%08d", phoneDigits(i, g.o.Seed)), name, email, string(attrs), created, updated}, nil
	})
}

// memberships returns the pairs segment by segment, each segment's contacts in ID
// order: the primary key's order. Segment k's members are a uniform sample (without
// repeats) of the contacts, drawn from a generator seeded by the seed and k.
func (g *generator) memberships() pgx.CopyFromSource {
	set := make([]uint64, (g.o.Contacts+63)/64)
	k, pos := -1, -1 // segment, and position in set of the current segment
	var row [3]any
	next := func() bool {
		for {
			if k >= 0 {
				// The next member of segment k after pos.
				for pos++; pos < g.o.Contacts; pos++ {
					w := set[pos/64] >> (pos % 64)
					if w == 0 {
						pos |= 63 // skip the rest of the word
						continue
					}
					pos += bits.TrailingZeros64(w)
					return true
				}
			}
			k++
			if k >= g.o.Segments {
				return false
			}
			g.sample(set, k)
			pos = -1
		}
	}
	return copyFunc(next, func() ([]any, error) {
		row[0], row[1], row[2] = g.ws, g.firstSeg+int64(k), g.firstContact+int64(pos)
		return row[:], nil
	})
}

// sample fills set with segment k's members.
func (g *generator) sample(set []uint64, k int) {
	n, total := g.sizes[k], g.o.Contacts
	clear(set)
	invert := n > total/2 // draw the complement when it is smaller
	draw := n
	if invert {
		draw = total - n
	}
	rng := rand.New(rand.NewPCG(g.o.Seed, uint64(k)+1))
	for got := 0; got < draw; {
		i := rng.IntN(total)
		if set[i/64]&(1<<(i%64)) == 0 {
			set[i/64] |= 1 << (i % 64)
			got++
		}
	}
	if invert {
		for w := range set {
			set[w] = ^set[w]
		}
		if r := total % 64; r != 0 {
			set[len(set)-1] &= 1<<r - 1
		}
	}
}

// copyFunc adapts two functions to pgx.CopyFromSource.
type copyFuncSource struct {
	next   func() bool
	values func() ([]any, error)
}

func copyFunc(next func() bool, values func() ([]any, error)) pgx.CopyFromSource {
	return &copyFuncSource{next: next, values: values}
}

func (c *copyFuncSource) Next() bool             { return c.next() }
func (c *copyFuncSource) Values() ([]any, error) { return c.values() }
func (c *copyFuncSource) Err() error             { return nil }

// Find returns the most recently created workspace named name that holds a dataset
// (its contacts), or sql.ErrNoRows.
func Find(ctx context.Context, db *sql.DB, name string) (Info, error) {
	var in Info
	err := db.QueryRowContext(ctx, `
		SELECT w.id, (SELECT count(*) FROM contacts c WHERE c.workspace_id = w.id),
		       (SELECT min(id) FROM contacts c WHERE c.workspace_id = w.id),
		       (SELECT count(*) FROM segments s WHERE s.workspace_id = w.id),
		       (SELECT coalesce(sum(contact_count), 0) FROM segments s WHERE s.workspace_id = w.id)
		FROM workspaces w
		WHERE w.name = $1 AND EXISTS (SELECT 1 FROM contacts c WHERE c.workspace_id = w.id)
		ORDER BY w.id DESC LIMIT 1`, name).Scan(&in.WorkspaceID, &in.Contacts, &in.FirstContactID, &in.Segments, &in.Memberships)
	return in, err
}

// Info describes a loaded dataset as found in the database.
type Info struct {
	WorkspaceID    int64
	Contacts       int
	FirstContactID int64
	Segments       int
	Memberships    int64
}

// Verify reports how the dataset found as in differs from what Load makes of o: the
// number of contacts, and each segment's ID, name and member count (segments.contact_count,
// which the memberships' triggers keep exact). It returns nil when they all match.
//
// A benchmark that reuses a dataset measures whatever is in it: a segment a lab made
// and did not delete lands on the first page of the segment list (the newest first),
// and its report would still describe the dataset as loaded.
func Verify(ctx context.Context, db *sql.DB, in Info, o Options) error {
	o = o.Fill()
	var diffs []string
	if in.Contacts != o.Contacts {
		diffs = append(diffs, fmt.Sprintf("%d contacts, not %d", in.Contacts, o.Contacts))
	}
	rows, err := db.QueryContext(ctx, `SELECT id, name, contact_count FROM segments WHERE workspace_id = $1 ORDER BY id`, in.WorkspaceID)
	if err != nil {
		return err
	}
	defer rows.Close()
	sizes := o.Sizes()
	const shown = 5 // differences named one by one; the rest are counted
	var first, others int64
	k := 0
	for ; rows.Next(); k++ {
		var (
			id, members int64
			name        string
		)
		if err := rows.Scan(&id, &name, &members); err != nil {
			return err
		}
		if k == 0 {
			first = id
		}
		var diff string
		switch {
		case k >= o.Segments:
			diff = fmt.Sprintf("segment %d (%q, %d members) is not one of the dataset's", id, name, members)
		case id != first+int64(k) || name != SegmentName(k, o.BigSegments):
			diff = fmt.Sprintf("segment %d (%q) is not the dataset's segment %d (%q)", id, name, first+int64(k), SegmentName(k, o.BigSegments))
		case members != int64(sizes[k]):
			diff = fmt.Sprintf("segment %d (%q) has %d members, not %d", id, name, members, sizes[k])
		}
		if diff == "" {
			continue
		}
		if len(diffs) < shown {
			diffs = append(diffs, diff)
		} else {
			others++
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if k != o.Segments {
		diffs = slices.Insert(diffs, 0, fmt.Sprintf("%d segments, not %d", k, o.Segments))
	}
	if others > 0 {
		diffs = append(diffs, fmt.Sprintf("and %d more differences", others))
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("benchdata: the dataset of workspace %d is not as loaded: %s", in.WorkspaceID, strings.Join(diffs, "; "))
}
