package store_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/segments/segments/internal/store"
	"github.com/segments/segments/internal/store/storetest"
)

// BenchmarkIdempotencyClaimFinish is what an Idempotency-Key adds to a mutation: the
// claim of a fresh key within its workspace's limit and the finish that stores its
// answer within the budget, as the server's role runs them: two statements, each
// reading the workspace's counter.
func BenchmarkIdempotencyClaimFinish(b *testing.B) {
	owner, app := storetest.NewStores(b, store.Options{})
	ws, _ := storetest.Workspace(b, owner)
	ctx := store.WithWorkspace(context.Background(), ws.ID)
	h := requestHash("a")
	answer := store.StoredResponse{Status: 200, ContentType: "application/json", Body: []byte(`{"data":{"upsertContacts":{"userErrors":[]}}}`)}
	budget := store.AnswerBudget{Bytes: 64 << 20, Status: 410, ContentType: "application/json", Body: []byte(`{"not":"kept"}`)}
	for b.Loop() {
		key := rand.Text()
		c, err := app.ClaimIdempotencyKey(ctx, ws.ID, key, h, time.Minute, 2*budget.Bytes)
		if err != nil || c.State != store.IdempotencyClaimed {
			b.Fatalf("claim: %+v, %v", c, err)
		}
		if _, err := app.FinishIdempotencyKey(ctx, ws.ID, key, c.Owner, answer, budget); err != nil {
			b.Fatal(err)
		}
	}
}
