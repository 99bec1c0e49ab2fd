package main

import (
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

// preflightFrom sends a browser's preflight of a POST with a bearer token from
// origin, and returns its status and Access-Control-Allow-Origin.
func preflightFrom(t *testing.T, url, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, url+"/graphql", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Access-Control-Allow-Origin")
}

// TestServeCORS: serve lets pages of any origin call /graphql by default, only the
// listed ones with --cors-origins (or SEGMENTS_CORS_ORIGINS), and none with off.
func TestServeCORS(t *testing.T) {
	db := storetest.Database(t)
	url := start(t, env(map[string]string{"DATABASE_URL": db}))
	if status, allow := preflightFrom(t, url, "https://app.example.com"); status != http.StatusNoContent || allow != "*" {
		t.Errorf("default: preflight %d, Access-Control-Allow-Origin %q; want 204 *", status, allow)
	}
	url = start(t, env(map[string]string{"DATABASE_URL": db, "SEGMENTS_CORS_ORIGINS": "https://App.example.com:443, http://localhost:3000"}))
	for origin, want := range map[string]int{"https://app.example.com": 204, "http://localhost:3000": 204, "https://evil.example": 403} {
		status, allow := preflightFrom(t, url, origin)
		if status != want || (want == 204) != (allow == origin) {
			t.Errorf("listed: preflight from %s %d, Access-Control-Allow-Origin %q; want %d", origin, status, allow, want)
		}
	}
}

// TestCORSOriginsSetting: --cors-origins and SEGMENTS_CORS_ORIGINS take "*", off, or
// exact origins, as browsers write them; what no Origin header can match (a path, a
// trailing slash, no scheme, "null") stops serve with a usage error that says why.
func TestCORSOriginsSetting(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{"", []string{"*"}}, // the default
		{"*", []string{"*"}},
		{"off", nil},
		{"https://app.example.com", []string{"https://app.example.com"}},
		{"https://App.Example.com:443,http://localhost:3000", []string{"https://app.example.com", "http://localhost:3000"}},
	} {
		byEnv, _, err := parse("serve", nil, env(map[string]string{"SEGMENTS_CORS_ORIGINS": tc.value}), io.Discard, true)
		if err != nil || !reflect.DeepEqual(byEnv.corsOrigins, tc.want) {
			t.Errorf("SEGMENTS_CORS_ORIGINS=%q: %q, %v; want %q", tc.value, byEnv.corsOrigins, err, tc.want)
		}
	}
	for value, why := range map[string]string{
		"https://app.example.com/":        "slash",
		"https://app.example.com/graphql": "path",
		"app.example.com":                 "no origin",
		"null":                            "sandboxed",
		"https://*.example.com":           "wildcard",
		"*,https://app.example.com":       "any origin",
		"https://a.example,":              "empty",
	} {
		for _, args := range [][]string{{"--cors-origins", value}, {"--cors-origins=" + value}} {
			_, _, err := parse("serve", args, env(nil), io.Discard, true)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), why) {
				t.Errorf("%v: %v, want a usage error saying %q", args, err, why)
			}
		}
		_, _, err := parse("serve", nil, env(map[string]string{"SEGMENTS_CORS_ORIGINS": value}), io.Discard, true)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "SEGMENTS_CORS_ORIGINS") || !strings.Contains(err.Error(), why) {
			t.Errorf("SEGMENTS_CORS_ORIGINS=%q: %v, want a usage error saying %q", value, err, why)
		}
	}
}
