package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/jackc/pgx/v5"
)

// Requeue implements webhook.Store, in one transaction; the commit wakes listening
// Senders.
func (s *Store) Requeue(ctx context.Context, p store.RequeueParams) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	const set = ` SET state = 'pending', attempts = 0, queued_at = $1, next_attempt_at = $1, updated_at = $1 `
	if len(p.IDs) == 0 {
		var n int
		err := s.pool.QueryRow(ctx, `WITH upd AS (
			UPDATE `+s.deliveries+set+`WHERE state = 'failed' AND endpoint_id = $2 AND created_at >= $3 RETURNING 1
		) SELECT (SELECT count(*) FROM upd), (SELECT pg_notify($4, '') WHERE EXISTS (SELECT 1 FROM upd)) IS NULL, `+durableCommit,
			p.Now, p.EndpointID, p.Since, s.cfg.channel).Scan(&n, nil, nil)
		if err != nil {
			return 0, wrap("requeue", err)
		}
		return n, nil
	}
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, "SELECT id, state FROM "+s.deliveries+" WHERE id = ANY($1) ORDER BY id FOR UPDATE", p.IDs)
		states := make(map[string]webhook.State, len(p.IDs))
		var id, state string
		if _, err := pgx.ForEachRow(rows, []any{&id, &state}, func() error {
			states[id] = webhook.State(state)
			return nil
		}); err != nil {
			return err
		}
		for _, id := range p.IDs {
			st, ok := states[id]
			if !ok {
				return fmt.Errorf("%w: %s", webhook.ErrNotFound, id)
			}
			if !st.Finished() {
				return fmt.Errorf("%w: %s is %s; only succeeded or failed deliveries can be requeued", webhook.ErrInvalidState, id, st)
			}
		}
		b := &pgx.Batch{}
		b.Queue("UPDATE "+s.deliveries+set+"WHERE id = ANY($2)", p.Now, p.IDs)
		b.Queue("SELECT pg_notify($1, ''), "+durableCommit, s.cfg.channel)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		n = len(states)
		return nil
	})
	if err != nil {
		if errors.Is(err, webhook.ErrNotFound) || errors.Is(err, webhook.ErrInvalidState) {
			return 0, err
		}
		return 0, wrap("requeue", err)
	}
	return n, nil
}
