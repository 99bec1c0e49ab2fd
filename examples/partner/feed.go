package main

import (
	"context"
	"errors"
	"maps"
	"time"
)

// changesQuery reads a page of the change feed (docs/partners.md, "Mirroring: the
// change feed"); export asks for the contacts' segments too.
const changesQuery = `query Changes($after: String, $segments: Boolean!) {
  contactChanges(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      contactId
      deletedAt
      contact { id phone name email attributes createdAt updatedAt segments @include(if: $segments) { name } }
    }
  }
}`

// change is a node of changesQuery: a contact at its latest state, or (Contact nil)
// its deletion.
type change struct {
	ContactID string     `json:"contactId"`
	DeletedAt *time.Time `json:"deletedAt"`
	Contact   *contact   `json:"contact"`
}

// walkFeed reads the change feed from after (nil: from the start) to its end, the
// first page without a next one, and passes each change to apply, in the feed's
// order. It returns the last endCursor, where the next poll starts (never empty at
// the feed's end), and how many changes and pages it read.
func walkFeed(ctx context.Context, c *Client, after *string, segments bool, apply func(change)) (end string, changes, pages int, err error) {
	return walkPages(ctx, c, "contactChanges", changesQuery, map[string]any{"segments": segments}, after, apply)
}

// walkPages reads a feed, the connection field of query (which takes $after), from
// after (nil: from the start) to its end, the first page without a next one,
// passing each node to apply in the feed's order: what both feeds' walks share
// (their queries and nodes are their own). vars are query's other variables. It
// returns the last endCursor, where the next poll starts (never empty at the feed's
// end), and how many nodes and pages it read.
func walkPages[N any](ctx context.Context, c *Client, field, query string, vars map[string]any, after *string, apply func(N)) (end string, nodes, pages int, err error) {
	v := maps.Clone(vars)
	if v == nil {
		v = map[string]any{}
	}
	for {
		var out map[string]struct {
			PageInfo struct {
				HasNextPage bool   `json:"hasNextPage"`
				EndCursor   string `json:"endCursor"`
			} `json:"pageInfo"`
			Nodes []N `json:"nodes"`
		}
		v["after"] = after
		if err := c.Query(ctx, query, v, &out); err != nil {
			return "", nodes, pages, err
		}
		pages++
		page := out[field]
		for _, n := range page.Nodes {
			apply(n)
			nodes++
		}
		p := page.PageInfo
		if p.EndCursor == "" {
			return "", nodes, pages, errors.New(field + ": a page without an endCursor")
		}
		if !p.HasNextPage {
			return p.EndCursor, nodes, pages, nil
		}
		after = &p.EndCursor
	}
}

// membershipsQuery reads a page of the feed of memberships (docs/partners.md,
// "Mirroring memberships"): 75 entries, the most the default maximum cost of 1,000
// takes, each entry's contactIds counting as 10.
const membershipsQuery = `query Memberships($after: String) {
  membershipChanges(first: 75, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { segmentId action contactIds }
  }
}`

// membershipChange is a node of membershipsQuery: contacts ADDED to a segment (or,
// from the start, its members) or REMOVED from it.
type membershipChange struct {
	SegmentID  string   `json:"segmentId"`
	Action     string   `json:"action"`
	ContactIDs []string `json:"contactIds"`
}

// walkMemberships reads the feed of memberships from after (nil: from the start) to
// its end, as walkFeed reads contactChanges, passing each entry to apply in order,
// and returns the last endCursor.
func walkMemberships(ctx context.Context, c *Client, after *string, apply func(membershipChange)) (end string, err error) {
	end, _, _, err = walkPages(ctx, c, "membershipChanges", membershipsQuery, nil, after, apply)
	return end, err
}
