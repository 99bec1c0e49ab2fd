package main

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/segments/segments/internal/limits"
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
	choice := func(p *string, flagName, envName, def string, allowed ...string) {
		check := func(v string) error {
			if !slices.Contains(allowed, v) {
				return fmt.Errorf("want %s, not %q", strings.Join(allowed, " or "), v)
			}
			return nil
		}
		*p = env(envName, def)
		if err := check(*p); err != nil && c.envErr == nil {
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
	choice(&c.introspection, "introspection", "SEGMENTS_INTROSPECTION", "on", "on", "off", "sessions")
	choice(&c.playground, "playground", "SEGMENTS_PLAYGROUND", "on", "on", "off")
}
