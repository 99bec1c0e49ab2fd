package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/segments/segments/internal/benchdata"
)

// W11's requests: each request changes the contacts the one before created (the
// first, those made before the run) and creates as many new ones, alternating,
// every phone a valid E.164 number of the scratch range, which the dataset's
// (+9198...) never enter; ours and PostGraphile's carry the same contacts.
func TestUpsertRequests(t *testing.T) {
	d := &dataset{ws: 7}
	type contact struct {
		Phone, Name, Email string
		Attributes         map[string]string
	}
	decode := func(t *testing.T, body []byte, workspace string) []contact {
		t.Helper()
		var req struct {
			Variables struct {
				In struct {
					Contacts    []contact
					WorkspaceID string `json:"workspaceId"`
				}
			}
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatal(err)
		}
		if req.Variables.In.WorkspaceID != workspace {
			t.Errorf("workspace %q; want %q", req.Variables.In.WorkspaceID, workspace)
		}
		return req.Variables.In.Contacts
	}
	var createdBefore []string // by the request before: the first one's made by upsertScratch
	from, to := upsertChanged(0)
	for i := from; i < to; i++ {
		createdBefore = append(createdBefore, upsertPhone(i))
	}
	seen := map[string]bool{}
	for j := range upsertRequests {
		r := d.upsertRequest(j)
		ours, pgl := decode(t, r.ours, ""), decode(t, r.pgl, "7")
		if !slices.EqualFunc(ours, pgl, func(a, b contact) bool { return a.Phone == b.Phone && a.Name == b.Name && a.Email == b.Email }) {
			t.Fatalf("request %d: ours and PostGraphile's contacts differ", j)
		}
		if len(ours) != upsertBatch {
			t.Fatalf("request %d: %d contacts; want %d", j, len(ours), upsertBatch)
		}
		var changed, created []string
		for k, c := range ours {
			if num, err := phonenumbers.Parse(c.Phone, ""); err != nil || !phonenumbers.IsValidNumber(num) || phonenumbers.Format(num, phonenumbers.E164) != c.Phone {
				t.Fatalf("request %d: phone %q is not a valid number in E.164", j, c.Phone)
			}
			if c.Phone < upsertPhonePrefix || c.Phone >= upsertPhoneEnd || !strings.HasPrefix(c.Phone, upsertPhonePrefix) {
				t.Fatalf("request %d: phone %q outside the scratch range", j, c.Phone)
			}
			if k%2 == 0 {
				changed = append(changed, c.Phone)
				if c.Attributes["plan"] != "pro" || c.Email != "" {
					t.Errorf("request %d: changed contact %+v; want only its plan made pro", j, c)
				}
				continue
			}
			created = append(created, c.Phone)
			if seen[c.Phone] || c.Attributes["plan"] != "free" || c.Email == "" {
				t.Errorf("request %d: new contact %+v seen before, or not on the free plan with an email", j, c)
			}
			seen[c.Phone] = true
		}
		if !slices.Equal(changed, createdBefore) {
			t.Fatalf("request %d changes %v...; want those created before it, %v...", j, changed[:2], createdBefore[:2])
		}
		createdBefore = created
	}
	// What upsertCheck counts after a run: every scratch contact, and all but the
	// last request's new ones changed.
	_, last := upsertNew(upsertRequests - 1)
	_, changed := upsertChanged(upsertRequests - 1)
	if last != len(seen)+upsertBatch/2 || changed != last-upsertBatch/2 {
		t.Errorf("a run leaves %d scratch contacts, %d changed; the requests made %d and changed %d", last, changed, len(seen)+upsertBatch/2, len(seen))
	}
}

// The report gives W11 as it gives W7: timed whole, with the contacts per second,
// and its ratios for the record.
func TestReportGivesTheContactSync(t *testing.T) {
	r := newReport(config{pool: 8, reps: 1}, benchdata.Options{})
	w := r.workload("W11")
	w.add(ours, repResult{WallSeconds: 2.5, ServerCPUms: 800, PGCPUms: 1900, PGAllCPUms: 2000, WALkB: 160 * 1024})
	w.add(pgl, repResult{WallSeconds: 2, ServerCPUms: 400, PGCPUms: 2000, PGAllCPUms: 2050, WALkB: 160 * 1024})
	w.add(flr, repResult{WallSeconds: 2.5, PGCPUms: 2000, PGAllCPUms: 2000, WALkB: 160 * 1024})
	w.contender(ours).Statements = 4
	w.summarize()
	r.computeRatios()
	reportSays(t, r,
		"| ours | 2.50 (2.50–2.50) | 8000 | 800 + 1900 | 2000 (100) | 160 | 4.00 |",
		"| postgraphile | 2.00 (2.00–2.00) | 10000 | 400 + 2000 | 2050 (50.0) | 160 |",
		"| W11 | wall time ours / PostGraphile | 1.25× (1.25–1.25) | report |  |",
		"| W11 | wall time ours / SQL floor | 1.00× (1.00–1.00) | report |  |")
}
