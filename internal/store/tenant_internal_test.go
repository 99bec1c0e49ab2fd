package store

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestCutTenantPrefix checks that CutTenantPrefix takes apart what tenantPrefix puts
// together, for a statement and for a search, each also as a transaction's first with
// its BEGIN, and a read sent again read-only, and leaves a statement sent without a workspace alone.
func TestCutTenantPrefix(t *testing.T) {
	const stmt = "SELECT 1; SELECT 2"
	for _, c := range []struct {
		ctx  context.Context
		want []string
	}{
		{context.Background(), []string{"SET LOCAL app.workspace_id = '42'"}},
		{forSearch(context.Background(), "buyers"), []string{"SET LOCAL app.workspace_id = '42'", "SET LOCAL enable_seqscan = off"}},
		{context.Background(), []string{"BEGIN", "SET LOCAL app.workspace_id = '42'"}},
		{forSearch(context.Background(), "buyers"), []string{"BEGIN ISOLATION LEVEL SERIALIZABLE", "SET LOCAL app.workspace_id = '42'", "SET LOCAL enable_seqscan = off"}},
		// A read sent again after another's cancel stopped it (QueryContext).
		{forSearch(context.Background(), "buyers"), []string{"SET LOCAL transaction_read_only = on", "SET LOCAL app.workspace_id = '42'", "SET LOCAL enable_seqscan = off"}},
	} {
		prefix, n := tenantPrefix(c.ctx, 42)
		if begin := c.want[0]; strings.HasPrefix(begin, "BEGIN") {
			// A transaction's first statement (tenantConn.takeBegin).
			prefix, n = begin+"; "+prefix, n+1
		} else if begin+"; " == readOnlySetting {
			prefix, n = readOnlySetting+prefix, n+1
		}
		settings, got, ok := CutTenantPrefix(prefix + stmt)
		if !ok || !slices.Equal(settings, c.want) || got != stmt || n != len(c.want) {
			t.Errorf("CutTenantPrefix(prefixed) = %q, %q, %v (%d settings sent); want %q", settings, got, ok, n, c.want)
		}
		if strings.Join(append(settings, got), "; ") != prefix+stmt {
			t.Errorf("settings and statement do not make the statement sent again")
		}
	}
	for _, sent := range []string{stmt, "BEGIN; " + stmt, "BEGIN"} {
		if settings, got, ok := CutTenantPrefix(sent); ok || settings != nil || got != sent {
			t.Errorf("CutTenantPrefix(%q) = %q, %q, %v; want it unprefixed", sent, settings, got, ok)
		}
	}
}

// TestParseURLRefusesAnAt: Open and AppURL refuse a URL with an '@' before its host
// that is not its user's end, echoing none of it (pgx took the rest of the password
// for the host, and the connection's error showed it); an encoded '@', a query's
// '@' and a keyword/value string's are the password's or the query's.
func TestParseURLRefusesAnAt(t *testing.T) {
	for _, bad := range []string{
		"postgres://segments:Sec@retPW7@127.0.0.1:1/x",
		"postgresql://seg@ments:SecretPW7@127.0.0.1/x",
		"postgres://segments:Sec@ret?PW7@127.0.0.1",
	} {
		for name, parse := range map[string]func(string) error{
			"Open":   func(u string) error { _, err := Open(context.Background(), u, Options{}); return err },
			"AppURL": func(u string) error { _, err := AppURL(context.Background(), u); return err },
		} {
			err := parse(bad)
			if err == nil || !strings.Contains(err.Error(), "more than one '@'") || strings.Contains(err.Error(), "PW7") || strings.Contains(err.Error(), "ret") {
				t.Errorf("%s(%s): %v, want the '@' refused, echoing none of it", name, bad, err)
			}
		}
	}
	for url, password := range map[string]string{
		"postgres://segments:Sec%40retPW7@127.0.0.1:1/x":                   "Sec@retPW7",
		"postgres://segments:SecretPW7@127.0.0.1:1/x?application_name=a@b": "SecretPW7",
		"host=127.0.0.1 user=segments password=Sec@retPW7 dbname=x":        "Sec@retPW7",
	} {
		if cfg, err := ParseURL(url); err != nil || cfg.Password != password || cfg.Host != "127.0.0.1" {
			t.Errorf("ParseURL(%s): %v, want password %q at 127.0.0.1", url, err, password)
		}
	}
}

// TestSetLocalWritesTheSimplePrefix: the SET LOCALs that SetLocal writes for the
// settings a connection that prepares binds (prepared.go) are those tenantPrefix
// sends the simple way, so that a tool replaying either sees the same statements.
func TestSetLocalWritesTheSimplePrefix(t *testing.T) {
	prefix, n := tenantPrefix(forSearch(context.Background(), "buyers"), 42)
	want := SetLocal(tenantSettingName, "42") + "; " + SetLocal(searchSettingName, "off") + "; "
	if prefix != want || n != 2 {
		t.Errorf("tenantPrefix: %q (%d settings); the prepared settings stand for %q", prefix, n, want)
	}
	for _, set := range []struct{ name, value string }{{tenantSettingName, "42"}, {searchSettingName, "off"}} {
		if name, value, ok := CutSetLocal(SetLocal(set.name, set.value)); !ok || name != set.name || value != set.value {
			t.Errorf("CutSetLocal(SetLocal(%q, %q)) = %q, %q, %v", set.name, set.value, name, value, ok)
		}
	}
}
