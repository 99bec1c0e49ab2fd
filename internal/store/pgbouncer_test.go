package store_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestThroughPgBouncer proves that `make test-pgbouncer` really puts PgBouncer between
// the tests and PostgreSQL: the server answers on another port than the one the
// store connected to.
func TestThroughPgBouncer(t *testing.T) {
	if !storetest.ThroughPgBouncer() {
		t.Skip("only with SEGMENTS_TEST_PGBOUNCER=1")
	}
	ctx := context.Background()
	dbURL := storetest.Database(t)
	s, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var serverPort int
	if err := s.DB().QueryRowContext(ctx, "SELECT inet_server_port()").Scan(&serverPort); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(serverPort) == u.Port() {
		t.Fatalf("connected straight to PostgreSQL on port %d, not through PgBouncer", serverPort)
	}
}
