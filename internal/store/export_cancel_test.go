package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// QueryDirect sends query as the store's hot read paths do (queryDirect), calling
// scan for each row.
func (s *Store) QueryDirect(ctx context.Context, query string, scan func(pgx.Rows) error) error {
	return queryDirect(ctx, s.db, nil, query, scan)
}

// CancelGrace is cancelGrace: how long a statement whose context ended runs on before
// its cancel request is sent.
const CancelGrace = cancelGrace
