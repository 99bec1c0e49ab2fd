package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segments/segments/internal/store/migrations"
)

// version is the binary's version when its build says it: make build sets it to
// git describe --always --dirty (-ldflags -X main.version=...), since the VCS
// stamp of debug.ReadBuildInfo is missing where GOFLAGS has -buildvcs=false.
var version string

// unknownVersion is the version of a binary built without any (go build outside a
// checkout, or with -buildvcs=false and no -X).
const unknownVersion = "unknown (built without version information)"

// build is what the binary knows of itself: segments version prints it, serve logs
// it at start-up and exports it as segments_build_info.
type build struct {
	// Version is -X main.version, else the module's version (go install ...@v1.2.3);
	// empty when neither is known.
	Version string
	// Revision and Time are the VCS commit and its time that go build stamped, and
	// Modified whether the tree had changes; empty when it stamped none.
	Revision, Time string
	Modified       bool
	GoVersion      string
	// Schema is the newest migration the binary has: the schema version it migrates
	// a database to, which the upgrade notes of docs/operations.md name.
	Schema string
}

// readBuild describes this binary.
func readBuild() build {
	bi, _ := debug.ReadBuildInfo()
	names, _ := migrations.Names(migrations.FS) // embedded: cannot fail
	return describeBuild(bi, version, names)
}

// describeBuild describes a binary of build information bi (nil: none), -X version
// ldVersion and migrations names.
func describeBuild(bi *debug.BuildInfo, ldVersion string, names []string) build {
	b := build{Version: ldVersion, GoVersion: runtime.Version()}
	if len(names) > 0 {
		b.Schema = names[len(names)-1]
	}
	if bi == nil {
		return b
	}
	if v := bi.Main.Version; b.Version == "" && v != "" && v != "(devel)" {
		b.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// version is the version to show, unknownVersion when none is known.
func (b build) version() string {
	if b.Version == "" {
		return unknownVersion
	}
	return b.Version
}

// revision is the VCS revision to show: the commit, its time and whether the tree
// had changes; "unknown" when the build stamped none.
func (b build) revision() string {
	if b.Revision == "" {
		return "unknown"
	}
	r := b.Revision
	if b.Time != "" {
		r += " (" + b.Time + ")"
	}
	if b.Modified {
		r += " with uncommitted changes"
	}
	return r
}

// print writes b as segments version shows it, one "name: value" a line.
func (b build) print(w io.Writer) {
	fmt.Fprintf(w, "version: %s\nrevision: %s\ngo: %s\nschema: %s\n", b.version(), b.revision(), b.GoVersion, b.Schema)
}

// log logs b, as serve does when it starts.
func (b build) log(log *slog.Logger) {
	log.Info("segments starting", "version", b.version(), "revision", b.revision(), "go_version", b.GoVersion, "schema", b.Schema)
}

// collector is the segments_build_info gauge, always 1, whose labels say what b
// says (Prometheus's convention for build information).
func (b build) collector() prometheus.Collector {
	label := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	revision := b.Revision
	if revision != "" && b.Modified {
		revision += "-dirty"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "segments_build_info",
		Help: "The binary's version, VCS revision, Go version and schema version (newest migration); always 1.",
		ConstLabels: prometheus.Labels{
			"version":    label(b.Version),
			"revision":   label(revision),
			"go_version": b.GoVersion,
			"schema":     label(b.Schema),
		},
	})
	g.Set(1)
	return g
}

// versionHelp describes the version command for "segments help version".
const versionHelp = `segments version (or segments --version) prints what the binary knows of itself,
one "name: value" a line: version (what make build stamped, git describe --always
--dirty, or the module's version of go install ...@VERSION; else "` + unknownVersion + `"),
revision (the VCS commit and its time that go build stamped, else unknown), go
(the Go version it was built with) and schema (the newest migration it has: the
schema version its migrate brings a database to). serve logs the same when it starts
("segments starting") and exports it on /metrics as segments_build_info.

`

// printVersion is segments version: it takes no arguments.
func printVersion(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && isHelp(args[0]) {
		return help([]string{"version"}, stdout, stderr)
	}
	if err := noArgs("version", args); err != nil {
		return err
	}
	readBuild().print(stdout)
	return nil
}
