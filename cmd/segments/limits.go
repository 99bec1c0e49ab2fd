package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/segments/segments/internal/auth"
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

// limitFlags registers the limit settings on fs, with defaults from env. A limit of 0
// takes its default; -1 turns it off.
func (c *config) limitFlags(fs *flag.FlagSet, env func(name, def string) string) {
	envInt := func(name string, def int64) int64 {
		v, err := strconv.ParseInt(env(name, strconv.FormatInt(def, 10)), 10, 64)
		if (err != nil || v < -1) && c.envErr == nil {
			c.envErr = fmt.Errorf("%s: want a whole number, -1 for no limit", name)
		}
		return v
	}
	integer := func(p *int, flagName, envName string, def int) {
		fs.IntVar(p, flagName, int(envInt(envName, int64(def))), "")
	}
	d := limits.Defaults
	fs.Int64Var(&c.limits.MaxBodyBytes, "max-body-bytes", envInt("SEGMENTS_MAX_BODY_BYTES", d.MaxBodyBytes), "")
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
	integer(&c.reservedForUsersPerWorkspace, "reserved-for-users-per-workspace", "SEGMENTS_RESERVED_FOR_USERS_PER_WORKSPACE", server.DefaultReservedForUsersPerWorkspace)
	// Rate limiting: 0 turns it off (no -1 here).
	rateCapacity := envInt("SEGMENTS_RATE_LIMIT_CAPACITY", defaultRateCapacity)
	if rateCapacity < 0 && c.envErr == nil {
		c.envErr = errors.New("SEGMENTS_RATE_LIMIT_CAPACITY: want a whole number, 0 for no rate limiting")
	}
	fs.IntVar(&c.rateCapacity, "rate-limit-capacity", int(rateCapacity), "")
	rate, err := strconv.ParseFloat(env("SEGMENTS_RATE_LIMIT_RESTORE_RATE", strconv.FormatFloat(defaultRateRestore, 'g', -1, 64)), 64)
	if err != nil && c.envErr == nil {
		c.envErr = fmt.Errorf("SEGMENTS_RATE_LIMIT_RESTORE_RATE: want points per second: %w", err)
	}
	fs.Float64Var(&c.rateRestore, "rate-limit-restore-rate", rate, "")
	choice := func(p *string, flagName, envName, def string, allowed ...string) {
		check := func(v string) error {
			if !slices.Contains(allowed, v) {
				return fmt.Errorf("want %s, not %q", strings.Join(allowed, " or "), v)
			}
			return nil
		}
		*p = env(envName, def)
		if *p == "" { // no default of its own: set by applyEnvironment
		} else if err := check(*p); err != nil && c.envErr == nil {
			c.envErr = fmt.Errorf("%s: %w", envName, err)
		}
		fs.Func(flagName, "", func(v string) error {
			if err := check(v); err != nil {
				return err
			}
			*p = v
			return nil
		})
	}
	choice(&c.environment, "env", "SEGMENTS_ENV", "development", "development", "production")
	choice(&c.introspection, "introspection", "SEGMENTS_INTROSPECTION", "", "on", "off", "sessions")
	choice(&c.playground, "playground", "SEGMENTS_PLAYGROUND", "", "on", "off")
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

// checkRateLimit refuses rate-limit settings that cannot work.
func (c *config) checkRateLimit() error {
	if c.rateCapacity == 0 {
		return nil
	}
	if c.rateCapacity < 0 || !(c.rateRestore > 0) || math.IsInf(c.rateRestore, 0) {
		return fmt.Errorf("%w: --rate-limit-capacity must be positive (0: off) and --rate-limit-restore-rate a positive number of points per second", errUsage)
	}
	if maxCost := c.limits.WithDefaults().MaxCost; maxCost > c.rateCapacity {
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
