package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Enqueue implements webhook.Store. Concurrent calls are written together (see
// WithBatchSize), each still all or none; it returns once the deliveries are committed.
// The store is unbounded: it never returns webhook.ErrQueueFull.
func (s *Store) Enqueue(ctx context.Context, ds []webhook.Delivery) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	return s.enqueues.do(ctx, ds)
}

// EnqueueTx implements store.TxStore: the deliveries are inserted with tx, which must be
// a pgx.Tx (from pool.Begin, or pgx.Conn.Begin on the same database), and become
// claimable when it commits; the commit also wakes listening Senders.
func (s *Store) EnqueueTx(ctx context.Context, tx any, ds []webhook.Delivery) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	ptx, ok := tx.(pgx.Tx)
	if !ok {
		return fmt.Errorf("%w: pgstore: EnqueueTx needs a pgx.Tx (from pool.Begin); got %T", webhook.ErrInvalidOption, tx)
	}
	if len(ds) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(s.enqueueSQL, enqueueArgs(ds)...)
	b.Queue("SELECT pg_notify($1, '')", s.cfg.channel)
	if err := ptx.SendBatch(ctx, b).Close(); err != nil {
		return enqueueError(err)
	}
	return nil
}

func (s *Store) writeEnqueues(reqs []*request[[]webhook.Delivery]) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var all []webhook.Delivery
	for _, r := range reqs {
		all = append(all, r.arg...)
	}
	err := s.insert(ctx, all)
	if err == nil || len(reqs) == 1 {
		for _, r := range reqs {
			r.done <- err
		}
		return
	}
	// One call's bad delivery (a duplicate ID) must not fail the others: write each alone.
	for _, r := range reqs {
		r.done <- s.insert(ctx, r.arg)
	}
}

// insert writes ds and the wake-up in one implicit transaction and one round trip,
// durably (durableCommit).
func (s *Store) insert(ctx context.Context, ds []webhook.Delivery) error {
	b := &pgx.Batch{}
	b.Queue(s.enqueueSQL, enqueueArgs(ds)...)
	b.Queue("SELECT pg_notify($1, ''), "+durableCommit, s.cfg.channel)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return enqueueError(err)
	}
	return nil
}

func enqueueError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("pgstore: enqueue: %w: a delivery with this ID is already stored, or the batch repeats it: %w", store.ErrDuplicateDelivery, err)
	}
	return wrap("enqueue", err)
}

func enqueueArgs(ds []webhook.Delivery) []any {
	n := len(ds)
	var (
		ids, events, types, endpoints, versions = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		bodies                                  = make([][]byte, n)
		attempts, statuses                      = make([]int32, n), make([]int32, n)
		created, queued, next, updated, leases  = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		errs, owners                            = make([]string, n), make([]string, n)
	)
	for i := range ds {
		d := &ds[i]
		ids[i], events[i], types[i], endpoints[i], versions[i] = d.ID, d.EventID, d.EventType, d.EndpointID, d.Version
		bodies[i] = d.Body
		attempts[i], statuses[i] = int32(d.Attempts), int32(d.LastStatus)
		created[i], queued[i], next[i], updated[i], leases[i] = d.CreatedAt, d.QueuedAt, d.NextAttemptAt, d.UpdatedAt, d.LeaseExpiresAt
		errs[i], owners[i] = d.LastError, d.LeaseOwner
	}
	return []any{ids, events, types, endpoints, versions, bodies, attempts,
		created, queued, next, updated, statuses, errs, owners, leases}
}
