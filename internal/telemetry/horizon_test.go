package telemetry

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segments/segments/internal/logtest"
	"github.com/segments/segments/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// oldestAge gathers segments_oldest_transaction_age_seconds from w, -1 when absent.
func oldestAge(t *testing.T, w *TransactionWatch) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "segments_oldest_transaction_age_seconds" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// TestTransactionWatch opens, in another database of the cluster, a transaction with
// an ID and leaves it idle, as an operator's forgotten psql session does: every
// workspace's change feed stops at it. The watch's gauge reports at least its age
// and its warning names it (not its query); once it commits, the gauge drops. Seen
// by the application's role, which may not read other roles' xact_start, the
// transaction is still found, its age counted from the first look that saw it.
func TestTransactionWatch(t *testing.T) {
	ctx := context.Background()
	owner := storetest.Store(t)
	conn := storetest.Conn(t, storetest.Database(t))
	var pid int64
	var xid, db string
	if _, err := conn.Exec(ctx, `SET application_name = 'forgotten psql'; BEGIN`); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id()::text, current_database()`).Scan(&pid, &xid, &db); err != nil {
		t.Fatal(err)
	}
	began := time.Now()

	var log logtest.Buffer
	w := NewTransactionWatch(owner, log.Logger(), TransactionWatchOptions{WarnAfter: time.Second})
	if age := oldestAge(t, w); age != -1 {
		t.Fatalf("gauge before the first look: %v, want none", age)
	}
	w.look(ctx)
	if age := oldestAge(t, w); age < 0 || age > time.Since(began).Seconds()+1 {
		t.Fatalf("gauge at once: %v", age)
	}
	if strings.Contains(log.String(), "change feed") {
		t.Fatalf("warned of a transaction younger than WarnAfter:\n%s", log.String())
	}

	app := NewTransactionWatch(storetest.AppStore(t), log.Logger(), TransactionWatchOptions{WarnAfter: time.Second})
	app.look(ctx)
	time.Sleep(1500 * time.Millisecond)
	w.look(ctx)
	if age, want := oldestAge(t, w), time.Since(began).Seconds(); age < want-0.1 {
		t.Fatalf("gauge %v s, the transaction is %v s old", age, want)
	}
	line := fmt.Sprintf(`msg="a transaction holds every workspace's change feed back" pid=%d xid=%s database=%s user=`, pid, xid, db)
	if !strings.Contains(log.String(), line) || !strings.Contains(log.String(), `application_name="forgotten psql" state="idle in transaction" age=`) {
		t.Fatalf("log has no warning %q:\n%s", line, log.String())
	}
	if strings.Contains(log.String(), "pg_current_xact_id") {
		t.Fatalf("the warning shows the transaction's query:\n%s", log.String())
	}
	w.look(ctx) // at most once a minute
	if n := strings.Count(log.String(), fmt.Sprintf("pid=%d ", pid)); n != 1 {
		t.Fatalf("%d warnings of the transaction, want 1:\n%s", n, log.String())
	}

	log.Reset()
	app.look(ctx)
	if age := oldestAge(t, app); age < 1.4 {
		t.Errorf("gauge of the application's role: %v, want the time since its first look (1.5 s)", age)
	}
	if !strings.Contains(log.String(), fmt.Sprintf("pid=%d xid=%s", pid, xid)) || !strings.Contains(log.String(), "age_since=") {
		t.Errorf("the application's role did not warn, saying its age is a lower bound:\n%s", log.String())
	}

	if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	w.look(ctx)
	if age := oldestAge(t, w); age < 0 || age >= 1 {
		t.Fatalf("gauge after the commit: %v, want below 1 s", age)
	}
}
