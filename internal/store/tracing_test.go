package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// TestStatementSpans: a transaction's statements, its BEGIN and its COMMIT or
// ROLLBACK, are spans under the span that ran it, also when that span has ended (a
// field's children run after it did); a failed statement's span has its SQLSTATE and
// not its error's message, which quotes values. The COMMIT had no span (Bun sends it
// with the BEGIN's context, whose span had ended), nor had the statements under an
// ended span, and a failure's message reached the span as an exception event.
func TestStatementSpans(t *testing.T) {
	s := storetest.Store(t)
	const secret = "98765 4321"
	for _, ended := range []bool{false, true} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		t.Cleanup(func() { tp.Shutdown(context.Background()) })
		ctx, parent := tp.Tracer("test").Start(context.Background(), "field")
		if ended {
			parent.End() // as a field's span is when its children run
		}

		if err := store.InTx(s, ctx, func(tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, "SELECT 1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := store.InTx(s, ctx, func(tx bun.Tx) error {
			// Sent as a template and its argument, so that its text is recorded
			// (db.query.text): the template, never the value.
			_, err := tx.ExecContext(ctx, "SELECT ?::int", secret)
			return err
		}); err == nil || !strings.Contains(err.Error(), secret) {
			t.Fatalf("the failing statement: %v, want an error quoting its value", err)
		}

		var got []string
		failures, texts := 0, 0
		for _, sp := range rec.Ended() {
			if sp.Name() == "field" {
				continue
			}
			got = append(got, sp.Name())
			if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("%s: parent %s, want the field's span", sp.Name(), sp.Parent().SpanID())
			}
			for _, a := range sp.Attributes() {
				if a.Key == "db.query.text" {
					texts++
				}
				if strings.Contains(a.Value.Emit(), secret) {
					t.Errorf("%s: attribute %s = %q quotes the statement's value", sp.Name(), a.Key, a.Value.Emit())
				}
			}
			for _, e := range sp.Events() {
				t.Errorf("%s: event %s %v", sp.Name(), e.Name, e.Attributes)
			}
			if strings.Contains(sp.Status().Description, secret) {
				t.Errorf("%s: status %q quotes the statement's value", sp.Name(), sp.Status().Description)
			}
			if sp.Status().Code == codes.Error {
				failures++
				attrs := map[string]string{}
				for _, a := range sp.Attributes() {
					attrs[string(a.Key)] = a.Value.Emit()
				}
				if attrs["db.response.status_code"] != "22P02" || attrs["error.type"] != "22P02" {
					t.Errorf("the failed statement's span: %v, want its SQLSTATE 22P02", attrs)
				}
			}
		}
		if texts == 0 {
			t.Errorf("parent ended %v: no span recorded its statement's text: the check of its value proves nothing", ended)
		}
		if failures != 1 {
			t.Errorf("parent ended %v: %d spans of failed statements, want 1", ended, failures)
		}
		if want := "BEGIN SELECT COMMIT BEGIN SELECT ROLLBACK"; strings.Join(got, " ") != want {
			t.Errorf("parent ended %v: spans %v, want %s", ended, got, want)
		}
		parent.End()
	}
}
