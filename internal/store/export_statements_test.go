package store

import (
	"context"
	"sync"

	"github.com/uptrace/bun"
)

// statementLog is the query hook of CaptureStatements: every store a test makes runs
// it (newPool installs queryHooks, queryDirect runs them), and it records only the
// statements of a context that CaptureStatements made.
type statementLog struct{}

type statementLogKey struct{}

// capturedStatements are the SQL texts of a context's statements, in order.
type capturedStatements struct {
	mu   sync.Mutex
	text []string
}

func init() { queryHooks = append(queryHooks, statementLog{}) }

func (statementLog) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if c, ok := ctx.Value(statementLogKey{}).(*capturedStatements); ok {
		c.mu.Lock()
		c.text = append(c.text, e.Query)
		c.mu.Unlock()
	}
	return ctx
}

func (statementLog) AfterQuery(context.Context, *bun.QueryEvent) {}

// CaptureStatements returns a context whose statements are recorded, complete with
// their arguments as sent, and a function that returns those sent so far and
// forgets them.
func CaptureStatements(ctx context.Context) (context.Context, func() []string) {
	c := &capturedStatements{}
	return context.WithValue(ctx, statementLogKey{}, c), func() []string {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := c.text
		c.text = nil
		return out
	}
}
