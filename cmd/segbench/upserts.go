package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// W11 is a partner's contact sync: upsertRequests requests of upsertContacts, each of
// upsertBatch contacts, half of them new and half of them contacts the request
// before created, changed (a partner's sync sends what is new or changed in its own
// CRM). Like W7 it is timed whole, back to back, one contender at a time.
//
// Its contacts are scratch ones, with phones of a range the dataset never uses
// (upsertPhonePrefix; bench-data's are +9198...): created before the run (those the
// first request changes) or by it, and deleted after it, with a VACUUM that takes
// their dead rows out of every index, so that each contender starts from the
// dataset as loaded.
const (
	upsertRequests    = 20
	upsertBatch       = 1000
	upsertPhonePrefix = "+9197"
	upsertPhoneEnd    = "+9198" // the first phone past the scratch range, in text order
)

// upsertPhone is the phone of the i-th scratch contact.
func upsertPhone(i int) string { return fmt.Sprintf("%s%08d", upsertPhonePrefix, i) }

// upsertChanged and upsertNew are the scratch contacts request j (from 0) changes and
// creates: [j·half, (j+1)·half) and [(j+1)·half, (j+2)·half). The first request's
// changed ones are created before the run (upsertScratch).
func upsertChanged(j int) (from, to int) { return j * upsertBatch / 2, (j + 1) * upsertBatch / 2 }
func upsertNew(j int) (from, to int)     { return (j + 1) * upsertBatch / 2, (j + 2) * upsertBatch / 2 }

// upsertRequest is request j of W11 for each GraphQL contender, its contacts
// alternating changed and new. A new contact has a name, an email and two
// attributes; a changed one's "plan" goes from "free" to "pro" (its other fields
// given are the ones it has), so that every changed contact is written. Both
// contenders return the contacts' IDs, as a partner keeps them.
func (d *dataset) upsertRequest(j int) pair {
	var in []map[string]any
	cf, _ := upsertChanged(j)
	nf, _ := upsertNew(j)
	for i := range upsertBatch / 2 {
		c := cf + i
		in = append(in, map[string]any{"phone": upsertPhone(c), "name": fmt.Sprintf("Synced %d", c), "attributes": map[string]any{"plan": "pro"}})
		in = append(in, upsertCreated(nf+i))
	}
	return pair{
		gql(`mutation($in: UpsertContactsInput!) { upsertContacts(input: $in) { contacts { id } createdCount updatedCount userErrors { field message code } } }`,
			map[string]any{"in": map[string]any{"contacts": in}}),
		gql(`mutation($in: SegbenchUpsertContactsInput!) { segbenchUpsertContacts(input: $in) { result { id } } }`,
			map[string]any{"in": map[string]any{"workspaceId": strconv.FormatInt(d.ws, 10), "contacts": in}}),
	}
}

// upsertCreated is scratch contact i as the request that creates it sends it (and
// as upsertScratch makes those the first request changes).
func upsertCreated(i int) map[string]any {
	return map[string]any{"phone": upsertPhone(i), "name": fmt.Sprintf("Synced %d", i), "email": fmt.Sprintf("synced%d@example.com", i),
		"attributes": map[string]any{"source": "sync", "plan": "free"}}
}

// upsertScratch creates the scratch contacts the first request changes, and writes a
// checkpoint, as scratch does for the assignments (run deletes those of an
// interrupted run at its start). Its drop deletes the scratch contacts and vacuums
// contacts, index entries included (INDEX_CLEANUP ON: the 10,500 rows dead, about 2%
// of the table's pages, are near the threshold under which VACUUM skips the indexes).
func (b *bench) upsertScratch(ctx context.Context) (drop func(), err error) {
	drop = func() {
		ctx := context.WithoutCancel(ctx)
		if _, err := deleteUpsertScratch(ctx, b.db, b.d.ws); err != nil {
			b.log("delete scratch contacts: %v", err)
		}
		if _, err := execLong(ctx, b.db, "VACUUM (ANALYZE, INDEX_CLEANUP ON) contacts"); err != nil {
			b.log("vacuum: %v", err)
		}
	}
	var made []map[string]any
	from, to := upsertChanged(0)
	for i := from; i < to; i++ {
		made = append(made, upsertCreated(i))
	}
	js, err := json.Marshal(made)
	if err != nil {
		return nil, err
	}
	if _, err := b.db.ExecContext(ctx, `INSERT INTO contacts (workspace_id, phone, name, email, attributes)
		SELECT $1, x.phone, x.name, x.email, x.attributes
		FROM jsonb_to_recordset($2::jsonb) AS x(phone text, name text, email text, attributes jsonb)`, b.d.ws, string(js)); err != nil {
		drop()
		return nil, err
	}
	b.checkpoint(ctx)
	return drop, nil
}

// deleteUpsertScratch deletes the workspace's scratch contacts and says how many
// there were.
func deleteUpsertScratch(ctx context.Context, db *sql.DB, ws int64) (int64, error) {
	res, err := execLong(ctx, db, `DELETE FROM contacts WHERE workspace_id = $1 AND phone >= $2 AND phone < $3`,
		ws, upsertPhonePrefix, upsertPhoneEnd)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// upsertCheck checks what a W11 run left: every scratch contact there, each changed
// one (all but the last request's new ones) on the "pro" plan.
func (b *bench) upsertCheck(ctx context.Context) error {
	var n, pro int
	if err := b.db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE attributes->>'plan' = 'pro')
		FROM contacts WHERE workspace_id = $1 AND phone >= $2 AND phone < $3`, b.d.ws, upsertPhonePrefix, upsertPhoneEnd).Scan(&n, &pro); err != nil {
		return err
	}
	_, last := upsertNew(upsertRequests - 1)
	_, changed := upsertChanged(upsertRequests - 1)
	if n != last || pro != changed {
		return fmt.Errorf("%d scratch contacts, %d of them changed; want %d and %d", n, pro, last, changed)
	}
	return nil
}

// upserts runs W11: for each repetition and contender in turn, the scratch
// contacts, then the upsertRequests requests back to back (ours and PostGraphile's
// over HTTP, the floor's our captured SQL replayed over one connection as our
// server's role), timed whole, checked, and the scratch contacts deleted.
func (b *bench) upserts(ctx context.Context) error {
	if len(b.w11Statements) != upsertRequests {
		return fmt.Errorf("the capture holds %d of our requests' SQL, want %d", len(b.w11Statements), upsertRequests)
	}
	wr := b.rep.workload("W11")
	wr.SQL = b.sqlOf["W11"]
	kinds := []string{ours, pgl, flr}
	if b.c.base != "" {
		kinds = append(kinds, base)
	}
	reqs := make([]pair, upsertRequests)
	for j := range reqs {
		reqs[j] = b.d.upsertRequest(j)
	}
	for rep := range b.c.reps {
		for _, i := range contenderOrder(len(kinds), rep) {
			k := kinds[i]
			drop, err := b.upsertScratch(ctx)
			if err != nil {
				return err
			}
			run := func() (err error) {
				for j := 0; j < upsertRequests && err == nil; j++ {
					switch k {
					case ours, base:
						_, err = b.post(k, reqs[j].ours)
					case pgl:
						_, err = b.post(pgl, reqs[j].pgl)
					case flr:
						err = replayOn(ctx, b.floorPool, b.w11Statements[j])
					}
				}
				return err
			}
			if err := b.timedWhole(ctx, wr, k, rep, run, func() error { return b.upsertCheck(ctx) }, drop); err != nil {
				return err
			}
		}
	}
	b.setStatements(wr)
	wr.summarize()
	return nil
}

// captureUpserts sends W11's requests to ours and the first to PostGraphile through
// the recording proxies (take returns what each sent since its last call), and
// keeps our requests' SQL for the floor, each request's statements in order
// (steadyState: no API key lookup, no statistics), their count per request, and
// the first request's SQL for the report. Each contender starts on scratch
// contacts of its own.
func (b *bench) captureUpserts(ctx context.Context, takeOurs, takePgl func() []string) error {
	var n int
	b.w11Statements = nil
	err := b.withUpsertScratch(ctx, func() error {
		for j := range upsertRequests {
			if _, err := b.post(ours, b.d.upsertRequest(j).ours); err != nil {
				return err
			}
			st := steadyState(takeOurs())
			b.w11Statements = append(b.w11Statements, st)
			n += len(st)
			if j == 0 {
				b.sqlOf["W11"] = abbreviate(strings.Join(st, ";\n") + ";\n")
			}
		}
		return b.upsertCheck(ctx)
	})
	if err != nil {
		return fmt.Errorf("ours: %w", err)
	}
	if err := b.withUpsertScratch(ctx, func() error {
		_, err := b.post(pgl, b.d.upsertRequest(0).pgl)
		return err
	}); err != nil {
		return err
	}
	b.stmts[ours]["W11"] = float64(n) / upsertRequests
	b.stmts[flr]["W11"] = b.stmts[ours]["W11"]
	b.stmts[pgl]["W11"] = float64(len(takePgl()))
	b.log("capture W11: %.2f statements per request (ours), %.0f (PostGraphile)", b.stmts[ours]["W11"], b.stmts[pgl]["W11"])
	return nil
}

// withUpsertScratch runs f between upsertScratch and its drop.
func (b *bench) withUpsertScratch(ctx context.Context, f func() error) error {
	drop, err := b.upsertScratch(ctx)
	if err != nil {
		return err
	}
	defer drop()
	return f()
}
