package main

import (
	"errors"
	"io"
	"testing"

	"github.com/segments/segments/internal/limits"
)

// TestLimitSettings proves that every limit is a flag and an environment variable
// (the flag winning), that the defaults are limits.Defaults, and that bad values are
// usage errors.
func TestLimitSettings(t *testing.T) {
	cfg, _, err := parse("serve", nil, env(nil), io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.limits.WithDefaults() != limits.Defaults || cfg.introspection != "on" || cfg.playground != "on" {
		t.Errorf("defaults: %+v %s %s", cfg.limits, cfg.introspection, cfg.playground)
	}
	cfg, _, err = parse("serve", []string{"--max-depth", "3", "--max-cost", "-1", "--introspection", "sessions", "--playground", "off"},
		env(map[string]string{"SEGMENTS_MAX_DEPTH": "9", "SEGMENTS_MAX_ALIASES": "7", "SEGMENTS_MAX_BODY_BYTES": "1024", "SEGMENTS_INTROSPECTION": "off"}),
		io.Discard, true)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.limits
	if l.MaxDepth != 3 || l.MaxCost != -1 || l.MaxAliases != 7 || l.MaxBodyBytes != 1024 || cfg.introspection != "sessions" || cfg.playground != "off" {
		t.Errorf("got %+v %s %s", l, cfg.introspection, cfg.playground)
	}
	// Production closes introspection to API keys and the playground, unless told.
	for _, tc := range []struct {
		args                      []string
		env                       map[string]string
		introspection, playground string
	}{
		{nil, map[string]string{"SEGMENTS_ENV": "production"}, "sessions", "off"},
		{[]string{"--env", "production"}, nil, "sessions", "off"},
		{[]string{"--env", "production", "--playground", "on"}, map[string]string{"SEGMENTS_INTROSPECTION": "on"}, "on", "on"},
		{[]string{"--env", "development"}, map[string]string{"SEGMENTS_ENV": "production"}, "on", "on"},
	} {
		cfg, _, err := parse("serve", tc.args, env(tc.env), io.Discard, true)
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
			continue
		}
		if cfg.introspection != tc.introspection || cfg.playground != tc.playground {
			t.Errorf("%v %v: introspection %q playground %q, want %q %q", tc.args, tc.env, cfg.introspection, cfg.playground, tc.introspection, tc.playground)
		}
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--env", "staging"}, nil},
		{[]string{"--introspection", "yes"}, nil},
		{[]string{"--playground", "sessions"}, nil},
		{[]string{"--max-tokens", "many"}, nil},
		{nil, map[string]string{"SEGMENTS_MAX_COST": "lots"}},
		{nil, map[string]string{"SEGMENTS_MAX_DEPTH": "-2"}},
		{nil, map[string]string{"SEGMENTS_INTROSPECTION": "maybe"}},
	} {
		if _, _, err := parse("serve", tc.args, env(tc.env), io.Discard, true); !errors.Is(err, errUsage) {
			t.Errorf("%v %v: %v, want a usage error", tc.args, tc.env, err)
		}
	}
}
