// Package demo fills a workspace with realistic data, so that the playground is worth
// exploring the moment the server starts.
package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/crm"
	"github.com/segments/segments/internal/store"
)

// WorkspaceName is the name of the demo workspace.
const WorkspaceName = "Demo"

// Contacts is the number of contacts the demo workspace holds.
const Contacts = 3000

var (
	firstNames = strings.Fields("Aarav Vivaan Aditya Vihaan Arjun Sai Reyansh Ayaan Krishna Ishaan Ananya Diya Aadhya Saanvi Pari Anika Navya Myra Sara Ira Rohan Kabir Meera Priya Neha Rahul Pooja Amit Sneha Vikram Kavya Riya Farhan Zoya Imran Gurpreet Harpreet Lakshmi Venkat Deepa")
	lastNames  = strings.Fields("Sharma Verma Patel Reddy Iyer Nair Gupta Singh Khan Das Bose Mehta Joshi Kulkarni Menon Rao Chopra Malhotra Banerjee Mukherjee Shaikh Pillai Gill Sethi Kapoor")
	cities     = strings.Fields("Mumbai Delhi Bengaluru Hyderabad Chennai Kolkata Pune Ahmedabad Jaipur Lucknow Kochi Indore")
	languages  = strings.Fields("hi en mr ta te bn gu kn ml pa")
	domains    = strings.Fields("gmail.com yahoo.co.in outlook.com rediffmail.com")
)

// segments of the demo: name, description, and the share of contacts in each.
var segments = []struct {
	name, description string
	share             float64
}{
	{"VIP Users", "Customers with lifetime spend above ₹50,000", 0.05},
	{"Festival Buyers", "Bought during Diwali, Holi or Eid sales", 0.30},
	{"High Value Customers", "Average order above ₹5,000", 0.12},
	{"New Signups", "Joined in the last 30 days", 0.15},
	{"Cart Abandoners", "Left items in the cart this week", 0.08},
	{"Newsletter Subscribers", "Opted in to the weekly offers broadcast", 0.45},
	{"Mumbai Customers", "Delivery address in Mumbai", 0.10},
	{"Hindi Speakers", "Prefer messages in Hindi", 0.25},
	{"Inactive 90 Days", "No order or reply for 90 days", 0.18},
	{"Beta Testers", "", 0.01},
}

// loadingPrefix starts the demo workspace's name until it is filled: a fill cut short
// (a Ctrl-C, a crash) leaves no workspace named WorkspaceName, which Seed would take
// as complete, but one named loadingPrefix + 16 random hexadecimal digits + ")",
// which the next Seed deletes. The random digits keep a workspace that a user named
// "Demo (loading)", or anything else, from being taken for one and deleted.
const loadingPrefix = WorkspaceName + " (loading "

// loadingName matches the names Seed gives workspaces it is filling.
var loadingName = regexp.MustCompile(`^` + regexp.QuoteMeta(loadingPrefix) + `[0-9a-f]{16}\)$`)

// KeyName and KeyLifetime name the keys Seed makes and bound their lives: every
// serve --demo makes one (only its hash is kept, so none can be shown again), and
// those of every start, printed in old logs and filled in old playground pages,
// stayed valid for good.
const (
	KeyName     = "demo"
	KeyLifetime = 30 * 24 * time.Hour
)

// Seed creates the demo workspace with its contacts and segments, or finds it when it
// exists, and returns a new API key for it. Seeds that run at once (two servers
// started with --demo) take turns: each deleted the other's workspace still loading.
func Seed(ctx context.Context, s *store.Store) (key auth.Key, err error) {
	err = s.InTurn(ctx, "demo seed", func() error {
		key, err = seed(ctx, s)
		return err
	})
	return key, err
}

func seed(ctx context.Context, s *store.Store) (auth.Key, error) {
	key, err := auth.NewKey()
	if err != nil {
		return "", err
	}
	newKey := store.NewAPIKey{Hash: key.Hash(), Prefix: key.Prefix(), Name: KeyName, ExpiresIn: KeyLifetime}
	for {
		ws, err := s.WorkspaceByName(ctx, WorkspaceName)
		if err != nil {
			break
		}
		sum, err := s.WorkspaceSummary(ctx, ws.ID)
		if err != nil {
			return "", err
		}
		if sum.DeletingSince == nil {
			return key, s.AddAPIKey(ctx, ws.ID, newKey)
		}
		// A workspace delete stopped midway left it cut off: a key of it would never
		// work. Finish its deletion, and seed another.
		if err := s.DeleteWorkspace(ctx, ws.ID, nil); err != nil && crm.UserErrors(err) == nil {
			return "", fmt.Errorf("demo: finish the deletion of the demo workspace %d: %w", ws.ID, err)
		}
	}
	stale, err := s.WorkspacesNamedFrom(ctx, loadingPrefix, 100)
	if err != nil {
		return "", err
	}
	for _, ws := range stale {
		if !loadingName.MatchString(ws.Name) {
			continue
		}
		if err := s.DeleteWorkspace(ctx, ws.ID, nil); err != nil && crm.UserErrors(err) == nil { // not deleted meanwhile
			return "", fmt.Errorf("demo: delete the workspace of a fill cut short: %w", err)
		}
	}
	ws, err := s.CreateWorkspace(ctx, fmt.Sprintf("%s%016x)", loadingPrefix, rand.Uint64()), newKey)
	if err != nil {
		return "", err
	}
	if err := fill(ctx, s, ws.ID); err != nil {
		return "", err
	}
	return key, s.RenameWorkspace(ctx, ws.ID, WorkspaceName)
}

func fill(ctx context.Context, s *store.Store, ws int64) error {
	rng := rand.New(rand.NewPCG(2026, 11)) // the same demo every time
	var ids []int64
	for len(ids) < Contacts {
		batch := make([]crm.ContactInput, 0, crm.MaxBulkContacts)
		for len(batch) < cap(batch) && len(ids)+len(batch) < Contacts {
			batch = append(batch, contact(rng))
		}
		res, err := s.UpsertContacts(ctx, ws, batch)
		if err != nil {
			return fmt.Errorf("demo: contacts: %w", err)
		}
		for _, c := range res.Contacts {
			ids = append(ids, c.ID)
		}
	}
	for _, seg := range segments {
		var desc *string
		if seg.description != "" {
			desc = &seg.description
		}
		created, err := s.CreateSegment(ctx, ws, crm.NewSegment{Name: seg.name, Description: desc})
		if err != nil {
			return fmt.Errorf("demo: segment %s: %w", seg.name, err)
		}
		var members []int64
		for _, id := range ids {
			if rng.Float64() < seg.share {
				members = append(members, id)
			}
		}
		for len(members) > 0 {
			n := min(len(members), crm.MaxBulkContacts)
			if _, err := s.AssignContactsToSegments(ctx, ws, members[:n], []int64{created.ID}, store.WithSegments); err != nil {
				return fmt.Errorf("demo: members of %s: %w", seg.name, err)
			}
			members = members[n:]
		}
	}
	return nil
}

func contact(rng *rand.Rand) crm.ContactInput {
	first, last := pick(rng, firstNames), pick(rng, lastNames)
	name := first + " " + last
	c := crm.ContactInput{
		Phone: phone(rng),
		ContactDetails: crm.ContactDetails{
			Name: crm.Some(&name),
			Attributes: crm.Some(map[string]any{
				"city":     pick(rng, cities),
				"language": pick(rng, languages),
				"orders":   rng.IntN(40),
			}),
		},
	}
	if rng.IntN(3) > 0 {
		email := fmt.Sprintf("%s.%s%d@%s", strings.ToLower(first), strings.ToLower(last), rng.IntN(100), pick(rng, domains))
		c.Email = crm.Some(&email)
	}
	return c
}

// phone returns a valid Indian mobile number: ten digits starting with 9, 8 or 7.
// Repeats fold into one contact, as they would in a real import.
func phone(rng *rand.Rand) string {
	for {
		p := fmt.Sprintf("+91%d%09d", 7+rng.IntN(3), rng.IntN(1_000_000_000))
		if _, err := crm.NormalizePhone(p); err == nil {
			return p
		}
	}
}

func pick(rng *rand.Rand, from []string) string { return from[rng.IntN(len(from))] }
