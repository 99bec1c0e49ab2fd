package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"

	"github.com/segments/segments/internal/auth"
	"github.com/segments/segments/internal/connlimit"
	"github.com/segments/segments/internal/idempotency"
	"github.com/segments/segments/internal/limits"
	"github.com/segments/segments/internal/server"
	"github.com/segments/segments/internal/store"
)

// The rate limit's defaults, in the spirit of Shopify's (a bucket of points refilled
// at 5% of its size a second) but with a bucket of ten maximal requests instead of
// one: no single request within --max-cost is ever refused for its size alone, a
// dashboard page load (a few requests of 20 to 200 points) or a partner's burst of
// bulk mutations (about 20 points per 1,000 contacts) passes at once, and a caller
// who keeps going is held to 500 points a second, for instance about 5 pages of 50
// contacts with their segments (101 points each), or 20,000 contacts synced, per
// second.
const (
	defaultRateCapacity = 10_000
	defaultRateRestore  = 500.0
)

// limitFlags registers the limit settings on fs, with defaults from getenv. A limit
// of 0 takes its default; -1 turns it off; anything else below is refused, from a
// flag as from its variable.
func (c *config) limitFlags(fs *flag.FlagSet, getenv func(string) string) {
	integer := func(p *int, flagName, envName string, def int) {
		c.setting(fs, getenv, flagName, envName, limitValue(p, def))
	}
	d := limits.Defaults
	c.setting(fs, getenv, "max-body-bytes", "SEGMENTS_MAX_BODY_BYTES", limitValue(&c.limits.MaxBodyBytes, d.MaxBodyBytes))
	integer(&c.limits.MaxTokens, "max-tokens", "SEGMENTS_MAX_TOKENS", d.MaxTokens)
	integer(&c.limits.MaxSelections, "max-selections", "SEGMENTS_MAX_SELECTIONS", d.MaxSelections)
	integer(&c.limits.MaxDepth, "max-depth", "SEGMENTS_MAX_DEPTH", d.MaxDepth)
	integer(&c.limits.MaxAliases, "max-aliases", "SEGMENTS_MAX_ALIASES", d.MaxAliases)
	integer(&c.limits.MaxDirectives, "max-directives", "SEGMENTS_MAX_DIRECTIVES", d.MaxDirectives)
	integer(&c.limits.MaxRootFields, "max-root-fields", "SEGMENTS_MAX_ROOT_FIELDS", d.MaxRootFields)
	integer(&c.limits.MaxFragments, "max-fragments", "SEGMENTS_MAX_FRAGMENTS", d.MaxFragments)
	integer(&c.limits.MaxRepeatedFields, "max-repeated-fields", "SEGMENTS_MAX_REPEATED_FIELDS", d.MaxRepeatedFields)
	integer(&c.limits.MaxListItems, "max-list-items", "SEGMENTS_MAX_LIST_ITEMS", d.MaxListItems)
	integer(&c.limits.MaxCost, "max-cost", "SEGMENTS_MAX_COST", d.MaxCost)
	integer(&c.maxRunning, "max-running-requests", "SEGMENTS_MAX_RUNNING_REQUESTS", server.DefaultMaxRunning)
	integer(&c.maxWaiting, "max-waiting-requests", "SEGMENTS_MAX_WAITING_REQUESTS", server.DefaultMaxWaiting)
	integer(&c.maxRunningPerCaller, "max-running-per-caller", "SEGMENTS_MAX_RUNNING_PER_CALLER", server.DefaultMaxRunningPerCaller)
	integer(&c.maxWaitingPerCaller, "max-waiting-per-caller", "SEGMENTS_MAX_WAITING_PER_CALLER", server.DefaultMaxWaitingPerCaller)
	integer(&c.maxRunningPerWorkspace, "max-running-per-workspace", "SEGMENTS_MAX_RUNNING_PER_WORKSPACE", server.DefaultMaxRunningPerWorkspace)
	integer(&c.maxWaitingPerWorkspace, "max-waiting-per-workspace", "SEGMENTS_MAX_WAITING_PER_WORKSPACE", server.DefaultMaxWaitingPerWorkspace)
	integer(&c.maxConnections, "max-connections", "SEGMENTS_MAX_CONNECTIONS", 0) // 0: connlimit.DefaultMax, at start
	integer(&c.reservedForUsersPerWorkspace, "reserved-for-users-per-workspace", "SEGMENTS_RESERVED_FOR_USERS_PER_WORKSPACE", server.DefaultReservedForUsersPerWorkspace)
	// Rate limiting: 0 turns it off (no -1 here).
	c.rateCapacity = defaultRateCapacity
	c.setting(fs, getenv, "rate-limit-capacity", "SEGMENTS_RATE_LIMIT_CAPACITY",
		wholeNumber[int]{p: &c.rateCapacity, min: 0, want: "want a whole number, 0 for no rate limiting"})
	c.rateRestore = defaultRateRestore
	c.setting(fs, getenv, "rate-limit-restore-rate", "SEGMENTS_RATE_LIMIT_RESTORE_RATE",
		floatValue{p: &c.rateRestore, want: "want points per second"})
	c.setting(fs, getenv, "idempotency-budget", "SEGMENTS_IDEMPOTENCY_BUDGET", limitValue(&c.idempotencyBudget, idempotency.DefaultAnswerBudget))
	c.setting(fs, getenv, "membership-changes-budget", "SEGMENTS_MEMBERSHIP_CHANGES_BUDGET", limitValue(&c.membershipChangesBudget, store.DefaultMembershipChangesBudget))
	choice := func(p *string, flagName, envName, def string, allowed ...string) {
		*p = def // "": no default of its own, set by applyEnvironment
		c.setting(fs, getenv, flagName, envName, choiceValue{p, allowed})
	}
	choice(&c.environment, "env", "SEGMENTS_ENV", "development", "development", "production")
	choice(&c.introspection, "introspection", "SEGMENTS_INTROSPECTION", "", "on", "off", "sessions")
	choice(&c.playground, "playground", "SEGMENTS_PLAYGROUND", "", "on", "off")
}

// connLimit caps the client connections ln serves at once (--max-connections, by
// default connlimit's of the process's descriptors and memory limit: serve set it
// before, unless GOMEMLIMIT did), never by default below the requests admission
// control lets run and wait.
func (c *config) connLimit(ln net.Listener, log *slog.Logger) *connlimit.Listener {
	requests := 0
	if c.maxRunning > 0 && c.maxWaiting >= 0 { // -1: no limit
		requests = c.maxRunning + c.maxWaiting
	}
	n := connlimit.Choose(c.maxConnections, requests, log)
	return connlimit.New(ln, connlimit.Options{Max: n, Log: log})
}

// applyEnvironment gives the settings that depend on the environment (--env) the
// value it implies, unless they were set: in development the schema and the
// playground are open to explore; in production introspection is for dashboard
// sessions only (not API keys) and there is no playground.
func (c *config) applyEnvironment() {
	production := c.environment == "production"
	if c.introspection == "" {
		c.introspection = map[bool]string{false: "on", true: "sessions"}[production]
	}
	if c.playground == "" {
		c.playground = map[bool]string{false: "on", true: "off"}[production]
	}
}

// checkRateLimit refuses rate-limit settings that cannot work: with rate limiting on,
// every request within --max-cost must fit in a bucket, so that THROTTLED always
// means "wait and retry".
func (c *config) checkRateLimit() error {
	if c.rateCapacity == 0 {
		return nil
	}
	if c.rateCapacity < 0 || !(c.rateRestore > 0) || math.IsInf(c.rateRestore, 0) {
		return fmt.Errorf("%w: --rate-limit-capacity must be positive (0: off) and --rate-limit-restore-rate a positive number of points per second", errUsage)
	}
	maxCost := c.limits.WithDefaults().MaxCost
	if maxCost < 0 {
		// No cost limit: a request costing more than a bucket holds would be answered
		// THROTTLED with a Retry-After for ever, a refusal to retry that never passes.
		return fmt.Errorf("%w: --max-cost -1 (no cost limit) needs rate limiting off (--rate-limit-capacity 0): a request costing more than a bucket's %d points could never run", errUsage, c.rateCapacity)
	}
	if maxCost > c.rateCapacity {
		return fmt.Errorf("%w: --rate-limit-capacity (%d) is below --max-cost (%d): requests costing more than a bucket holds could never run", errUsage, c.rateCapacity, maxCost)
	}
	return nil
}

// throttle returns the rate limiter of the settings: token buckets in s's database,
// one per API key and one per dashboard user, or nil when rate limiting is off.
func (c *config) throttle(s *store.Store) (limits.Throttle, error) {
	if err := c.checkRateLimit(); err != nil || c.rateCapacity == 0 {
		return nil, err
	}
	return store.NewRateLimiter(s, store.RateLimiterOptions{
		Capacity:    c.rateCapacity,
		RestoreRate: c.rateRestore,
		Workspace: func(ctx context.Context) (int64, bool) {
			ws, ok := auth.WorkspaceFrom(ctx)
			return ws.ID, ok
		},
	})
}
