package pgserver

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinDirFollowsTheCluster: the binaries are those of the major version the data
// directory's cluster was made by (its PG_VERSION), not the newest installed: with
// 15 and 16 installed, a cluster of 15 no longer started once 16 came. A new data
// directory takes the newest. A cluster whose version is not installed is refused
// naming the version and SEGMENTS_PG_BINDIR, and a SEGMENTS_PG_BINDIR without the
// binaries says that they do not exist (it blamed the postgres OS user's
// permissions).
func TestBinDirFollowsTheCluster(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"14", "15", "16"} {
		bin := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"initdb", "postgres"} {
			if err := os.WriteFile(filepath.Join(bin, f), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	noPath := func(string) (string, error) { return "", errors.New("not on $PATH") }
	cluster := func(version string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "pgdata"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pgdata", "PG_VERSION"), []byte(version+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, c := range []struct {
		name, dir, want string
	}{
		{"new data directory", t.TempDir(), filepath.Join(root, "16", "bin")},
		{"cluster of 15", cluster("15"), filepath.Join(root, "15", "bin")},
		{"cluster of 14", cluster("14"), filepath.Join(root, "14", "bin")},
		{"cluster of 16", cluster("16"), filepath.Join(root, "16", "bin")},
	} {
		if got, err := chooseBinDir("", c.dir, root, noPath); err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %s", c.name, got, err, c.want)
		}
	}
	if _, err := chooseBinDir("", cluster("13"), root, noPath); err == nil ||
		!strings.Contains(err.Error(), "PostgreSQL 13") || !strings.Contains(err.Error(), "SEGMENTS_PG_BINDIR") {
		t.Errorf("cluster of 13, not installed: %v, want a refusal naming 13 and SEGMENTS_PG_BINDIR", err)
	}
	// Without Debian's layout, initdb's directory on $PATH, whatever the cluster
	// (PostgreSQL refuses a cluster of another version itself).
	onPath := func(string) (string, error) { return "/opt/pg/bin/initdb", nil }
	if got, err := chooseBinDir("", cluster("13"), t.TempDir(), onPath); err != nil || got != "/opt/pg/bin" {
		t.Errorf("$PATH: %q, %v", got, err)
	}
	// An explicit directory wins, and must hold the binaries.
	explicit := filepath.Join(root, "14", "bin")
	if got, err := chooseBinDir(explicit, cluster("15"), root, noPath); err != nil || got != explicit {
		t.Errorf("explicit: %q, %v", got, err)
	}
	missing := filepath.Join(root, "nowhere")
	if _, err := chooseBinDir(missing, t.TempDir(), root, noPath); err == nil ||
		!strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "SEGMENTS_PG_BINDIR") {
		t.Errorf("missing explicit: %v, want it said not to exist", err)
	}
}
