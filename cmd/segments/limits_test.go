package main

import (
	"errors"
	"io"
	"reflect"
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

// TestFlagsCheckedAsTheirVariables proves that a setting's flag and its environment
// variable take the same values: each value that one refuses the other refuses too,
// and each value both take gives the same configuration. (A flag once skipped its
// variable's checks: --max-depth -5 turned the limit off where SEGMENTS_MAX_DEPTH=-5
// was refused.)
func TestFlagsCheckedAsTheirVariables(t *testing.T) {
	values := []string{"-5", "-2", "-1", "0", "7", "1.5", "10s", "500us", "yes", "1", "TRUE", "t", "xml", "JSON", "json", "text", "production", "off"}
	for _, s := range settings {
		if s.flag == "" || !s.readBy("serve") {
			continue
		}
		for _, v := range values {
			byFlag, _, errFlag := parse("serve", []string{s.flag + "=" + v}, env(nil), io.Discard, true)
			byEnv, _, errEnv := parse("serve", nil, env(map[string]string{s.env: v}), io.Discard, true)
			switch {
			case (errFlag == nil) != (errEnv == nil):
				t.Errorf("%s=%q: %v, but %s=%q: %v", s.flag, v, errFlag, s.env, v, errEnv)
			case errFlag != nil && (!errors.Is(errFlag, errUsage) || !errors.Is(errEnv, errUsage)):
				t.Errorf("%s=%q: %v and %v, want usage errors", s.flag, v, errFlag, errEnv)
			case errFlag == nil && !reflect.DeepEqual(byFlag, byEnv):
				t.Errorf("%s=%q gives %+v, %s=%q %+v", s.flag, v, byFlag, s.env, v, byEnv)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--max-depth", "-5", "--max-cost", "-7", "--max-root-fields", "-3"}, nil},
		{[]string{"--max-body-bytes", "-2"}, nil},
		{[]string{"--log-format", "xml"}, nil},
		{[]string{"--log-format", "JSON"}, nil}, // exact, as --env and --playground are
		{nil, map[string]string{"SEGMENTS_LOG_FORMAT": "JSON"}},
		{nil, map[string]string{"SEGMENTS_LOG_FORMAT": "xml"}},
		{nil, map[string]string{"SEGMENTS_DEMO": "yes"}},
		{[]string{"--demo=yes"}, nil},
		{[]string{"--request-timeout", "-1s"}, nil}, // was no deadline at all
		{[]string{"--request-timeout", "0"}, nil},   // so was 0, the body's before authentication included
		{nil, map[string]string{"SEGMENTS_REQUEST_TIMEOUT": "0s"}},
		{nil, map[string]string{"SEGMENTS_REQUEST_TIMEOUT": "500ms"}},
		{nil, map[string]string{"SEGMENTS_SHUTDOWN_TIMEOUT": "-5s"}},
		// Stored as the roles' defaults, 30 ms stopped the seeds and checks after it.
		{[]string{"--statement-timeout", "30ms"}, nil},
		{nil, map[string]string{"SEGMENTS_IDLE_TRANSACTION_TIMEOUT": "500us"}},
	} {
		if _, _, err := parse("serve", tc.args, env(tc.env), io.Discard, true); !errors.Is(err, errUsage) {
			t.Errorf("%v %v: %v, want a usage error", tc.args, tc.env, err)
		}
	}
	// Booleans: what strconv.ParseBool takes, from a flag or a variable.
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, nil, false},
		{nil, map[string]string{"SEGMENTS_DEMO": "1"}, true},
		{nil, map[string]string{"SEGMENTS_DEMO": "TRUE"}, true},
		{nil, map[string]string{"SEGMENTS_DEMO": "true"}, true},
		{nil, map[string]string{"SEGMENTS_DEMO": "0"}, false},
		{[]string{"--demo"}, nil, true},
		{[]string{"--demo=1"}, nil, true},
		{[]string{"--demo=false"}, map[string]string{"SEGMENTS_DEMO": "1"}, false},
	} {
		cfg, _, err := parse("serve", tc.args, env(tc.env), io.Discard, true)
		if err != nil || cfg.demo != tc.want {
			t.Errorf("%v %v: demo %v, %v; want %v", tc.args, tc.env, cfg != nil && cfg.demo, err, tc.want)
		}
	}
	cfg, _, err := parse("serve", []string{"--log-format", "json"}, env(map[string]string{"SEGMENTS_LOG_FORMAT": "text"}), io.Discard, true)
	if err != nil || cfg.logFormat != "json" {
		t.Errorf("--log-format json: %v", err)
	}
}
