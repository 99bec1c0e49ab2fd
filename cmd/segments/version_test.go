package main

import (
	"maps"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// newestMigration is the newest migration in the source tree, by its full name.
func newestMigration(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("../../internal/store/migrations/*.up.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	return strings.TrimSuffix(filepath.Base(files[len(files)-1]), ".tx.up.sql")
}

// TestVersion: segments version and --version print the version (unknown for a
// test binary, built without any), the VCS revision, the Go version and the schema
// version, the newest migration; arguments are refused. There was no way to tell
// which version ran.
func TestVersion(t *testing.T) {
	want := "version: unknown (built without version information)\nrevision: unknown\ngo: " + runtime.Version() + "\nschema: " + newestMigration(t) + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, err := cli(env(nil), args...)
		if err != nil || stdout != want {
			t.Errorf("%v: %v\n%s%s, want\n%s", args, err, stdout, stderr, want)
		}
	}
	if _, _, err := cli(env(nil), "version", "now"); exitCode(err) != 2 {
		t.Errorf("version now: %v, want a usage error", err)
	}
	if stdout, _, err := cli(env(nil), "help", "version"); err != nil || !strings.Contains(stdout, "segments_build_info") || strings.Contains(stdout, "Settings of") {
		t.Errorf("help version: %v\n%s", err, stdout)
	}
}

// TestDescribeBuild: what the binary knows of itself, from -X main.version, the
// module's version and the VCS stamp of go build.
func TestDescribeBuild(t *testing.T) {
	names := []string{"20261128000001_init", "20261212000001_change_feed_epoch"}
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-12T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		bi                *debug.BuildInfo
		ld                string
		version, revision string
		labels            map[string]string // of segments_build_info
	}{
		{nil, "", unknownVersion, "unknown", map[string]string{"version": "unknown", "revision": "unknown"}},
		{stamped, "v1.4.0-3-g0123abc-dirty", "v1.4.0-3-g0123abc-dirty", "0123abcd (2026-12-12T10:00:00Z) with uncommitted changes",
			map[string]string{"version": "v1.4.0-3-g0123abc-dirty", "revision": "0123abcd-dirty"}},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.5.0"}}, "", "v1.5.0", "unknown", map[string]string{"version": "v1.5.0", "revision": "unknown"}},
	} {
		b := describeBuild(c.bi, c.ld, names)
		if b.version() != c.version || b.revision() != c.revision || b.Schema != names[1] || b.GoVersion != runtime.Version() {
			t.Errorf("%+v, %q: %+v", c.bi, c.ld, b)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(b.collector())
		families, err := reg.Gather()
		if err != nil || len(families) != 1 || len(families[0].GetMetric()) != 1 {
			t.Fatalf("gathered %v, %v", families, err)
		}
		m := families[0].GetMetric()[0]
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		c.labels["go_version"], c.labels["schema"] = runtime.Version(), names[1]
		if families[0].GetName() != "segments_build_info" || m.GetGauge().GetValue() != 1 || !maps.Equal(got, c.labels) {
			t.Errorf("%+v, %q: %s %v = %v, want %v = 1", c.bi, c.ld, families[0].GetName(), got, m.GetGauge().GetValue(), c.labels)
		}
	}
}
