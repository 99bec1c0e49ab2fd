package graph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/segments/segments/internal/logtest"
)

// TestContendedChangesAreRetryable: a change whose attempts all met concurrent ones
// (a deadlock, a serialization failure, rows changed between its statements) is
// UNAVAILABLE with a requestId, logged as a warning: nothing was written and the
// same request succeeds retried. It was INTERNAL_SERVER_ERROR and an ERROR line (a
// bug), 7 to 13 times a minute for upserts beside deletions of the same phones.
func TestContendedChangesAreRetryable(t *testing.T) {
	for _, code := range []string{"40P01", "40001"} {
		var log logtest.Buffer
		err := fmt.Errorf("upsertContacts store: %w", &pgconn.PgError{Code: code, Message: "deadlock detected"})
		e := presentUnlocated(log.Logger())(context.Background(), err)
		if e.Extensions["code"] != codeUnavailable || e.Extensions["requestId"] == nil || strings.Contains(e.Message, "deadlock") {
			t.Errorf("%s: %+v, want UNAVAILABLE with a requestId and no detail", code, e)
		}
		if s := log.String(); strings.Contains(s, "level=ERROR") || !strings.Contains(s, "concurrent changes collided") {
			t.Errorf("%s: logged as\n%s", code, s)
		}
	}
	var log logtest.Buffer
	if e := presentUnlocated(log.Logger())(context.Background(), errors.New("something else")); e.Extensions["code"] != "INTERNAL_SERVER_ERROR" {
		t.Errorf("another failure: %+v, want INTERNAL_SERVER_ERROR", e)
	}
}
