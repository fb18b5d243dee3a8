package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writeTimeout bounds one batched write, whatever the contexts of the calls in it.
const writeTimeout = 30 * time.Second

// Store is a webhook.Store in PostgreSQL, shared by any number of Senders in any number
// of processes. It also implements store.TxStore (EnqueueTx in the caller's pgx.Tx) and
// store.Notifier (LISTEN/NOTIFY wake-ups). A Store is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	cfg  config

	deliveries      string // quoted, schema-qualified table names
	attempts        string
	migrationsTable string
	claimSQL        sync.Map  // claimShape -> string
	beyondSQL       [2]string // beyondWindowQuery's statement, without and with ordered endpoints
	recordSQL       string
	enqueueSQL      string
	// NextDue's statements: without exclusions, with them (windowed), and past a full window.
	nextDueSQL, nextDueWindowSQL, nextDueBeyondSQL string
	// stepUntil (Unix nanoseconds, wall clock) is when claims that exclude endpoints go
	// back to reading the due window first; until then they step through the endpoints
	// at once (see stepFor, which tests may change here).
	stepUntil atomic.Int64
	stepFor   time.Duration

	records  *batcher[store.RecordParams]
	enqueues *batcher[[]webhook.Delivery]

	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	closed    atomic.Bool

	listenOnce sync.Once
	listenDone chan struct{}
	subsMu     sync.Mutex
	subs       []chan struct{}
}

var (
	_ store.TxStore  = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New returns a Store on pool, configured by opts. The pool stays the caller's: Close the
// Store, then the pool. New does not touch the database; call Migrate (or apply
// Migrations with your own tool) before use. Invalid options return an error wrapping
// webhook.ErrInvalidOption.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, fmt.Errorf("%w: pgstore: New needs a *pgxpool.Pool (pgxpool.New(ctx, url))", webhook.ErrInvalidOption)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	table := func(name string) string { return quote(cfg.schema) + "." + quote(cfg.prefix+name) }
	s := &Store{
		pool:            pool,
		stepFor:         stepFor,
		cfg:             cfg,
		deliveries:      table("deliveries"),
		attempts:        table("attempts"),
		migrationsTable: table("migrations"),
		stop:            make(chan struct{}),
	}
	s.buildSQL()
	s.records = newBatcher(cfg.batchSize, s.stop, s.writeRecords)
	s.enqueues = newBatcher(cfg.batchSize, s.stop, s.writeEnqueues)
	return s, nil
}

// Close stops the store's background work (the LISTEN connection and the batch writers)
// and waits for it; calls made afterwards fail. Close the Senders using the store first.
// It does not close the pool. Safe to call more than once.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.records.wait()
		s.enqueues.wait()
		s.listenOnce.Do(func() {}) // a later Notify must not start the listener
		if s.listenDone != nil {
			<-s.listenDone
		}
	})
}

func quote(ident string) string { return pgx.Identifier{ident}.Sanitize() }

const deliveryColumns = `id, event_id, event_type, endpoint_id, version, body, state, attempts,
	created_at, queued_at, next_attempt_at, updated_at, last_status, last_error, lease_owner, lease_expires_at`

// zeroTime is how a zero time.Time is stored (timestamptz reaches back to 4713 BC), so it
// reads back as the zero time.
const zeroTime = `'0001-01-01 00:00:00+00'::timestamptz`

func (s *Store) buildSQL() {
	// One statement per batch, set-based: the update checks each lease, the insert appends
	// each attempt numbered from the delivery's running total, and the two flags per input
	// row tell success, lease lost and not found apart, so one call's lost lease fails only
	// that call. The in-flight state is a parameter ($13) so that the cached plan finds the
	// rows by primary key: a literal would match the in-flight partial index, which the
	// planner then scans whole, dead entries of finished deliveries and all. The not-found
	// check runs only for rows not updated, and only over the batch's IDs: otherwise a
	// plan made while the table was small hashes the whole table on every call.
	s.recordSQL = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[],
		$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bytea[])
		WITH ORDINALITY AS u(id, owner, state, has_attempt, status, error, reason, now, next_at, started, duration, resp, ord)
), upd AS (
	UPDATE ` + s.deliveries + ` d SET
		state = i.state,
		attempts = d.attempts + i.has_attempt,
		attempts_total = d.attempts_total + i.has_attempt,
		last_status = CASE WHEN i.has_attempt = 1 THEN i.status ELSE d.last_status END,
		last_error = CASE WHEN i.has_attempt = 1 THEN i.error WHEN i.reason <> '' THEN i.reason ELSE d.last_error END,
		lease_owner = '',
		lease_expires_at = ` + zeroTime + `,
		updated_at = i.now,
		next_attempt_at = CASE WHEN i.state = 'pending' THEN i.next_at ELSE d.next_attempt_at END
	FROM input i
	WHERE d.id = ANY($1::text[]) AND d.id = i.id AND d.state = $13 AND d.lease_owner = i.owner
	RETURNING d.id, d.attempts_total
), ins AS (
	INSERT INTO ` + s.attempts + ` (delivery_id, number, started_at, duration_ns, status_code, error, response_body)
	SELECT upd.id, upd.attempts_total, i.started, i.duration, i.status, i.error, i.resp
	FROM upd JOIN input i ON i.id = upd.id WHERE i.has_attempt = 1
)
SELECT i.ord, u.id IS NOT NULL,
	u.id IS NOT NULL OR EXISTS (SELECT 1 FROM ` + s.deliveries + ` d WHERE d.id = i.id AND d.id = ANY($1::text[]))
FROM input i LEFT JOIN upd u ON u.id = i.id`

	s.enqueueSQL = `
INSERT INTO ` + s.deliveries + ` (` + deliveryColumns + `)
SELECT id, event_id, event_type, endpoint_id, version, body, 'pending', attempts,
	created_at, queued_at, next_attempt_at, updated_at, last_status, last_error, lease_owner, lease_expires_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int[],
	$8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::int[], $13::text[],
	$14::text[], $15::timestamptz[])
	AS u(id, event_id, event_type, endpoint_id, version, body, attempts,
	created_at, queued_at, next_attempt_at, updated_at, last_status, last_error, lease_owner, lease_expires_at)`

	s.beyondSQL = [2]string{s.beyondWindowQuery(false), s.beyondWindowQuery(true)}
	s.nextDueSQL = `SELECT least(
	(SELECT min(next_attempt_at) FROM ` + s.deliveries + ` WHERE state = 'pending'),
	(SELECT min(lease_expires_at) FROM ` + s.deliveries + ` WHERE state = 'in_flight'))`
	s.nextDueWindowSQL = `WITH ` + s.dueWindow("", excludeWindow) + `
SELECT least(
	(SELECT next_attempt_at FROM ` + s.deliveries + ` d
	WHERE state = 'pending' AND ` + notExcluded("endpoint_id", "$1") + ` AND ` + withinWindow + `
	ORDER BY next_attempt_at, id LIMIT 1),
	(SELECT min(lease_expires_at) FROM ` + s.deliveries + ` WHERE state = 'in_flight' AND ` + notExcluded("endpoint_id", "$1") + `)),
	EXISTS (SELECT 1 FROM bound)`
	s.nextDueBeyondSQL = `WITH RECURSIVE ` + s.pendingEndpoints() + `
SELECT least(
	(SELECT min(e.at) FROM endpoints e WHERE ` + notExcluded("e.id", "$1") + `),
	(SELECT min(lease_expires_at) FROM ` + s.deliveries + ` WHERE state = 'in_flight' AND ` + notExcluded("endpoint_id", "$1") + `))`
}

// scanDelivery reads deliveryColumns (plus extra destinations) from row.
func scanDelivery(row pgx.Row, d *webhook.Delivery, extra ...any) error {
	var state string
	var attempts, status int32
	dest := append([]any{&d.ID, &d.EventID, &d.EventType, &d.EndpointID, &d.Version, &d.Body, &state, &attempts,
		&d.CreatedAt, &d.QueuedAt, &d.NextAttemptAt, &d.UpdatedAt, &status, &d.LastError, &d.LeaseOwner, &d.LeaseExpiresAt},
		extra...)
	if err := row.Scan(dest...); err != nil {
		return err
	}
	d.State, d.Attempts, d.LastStatus = webhook.State(state), int(attempts), int(status)
	// timestamptz carries no zone: hand back UTC, so the zero time reads back as the zero
	// time.Time and times written in UTC compare equal field by field.
	for _, t := range []*time.Time{&d.CreatedAt, &d.QueuedAt, &d.NextAttemptAt, &d.UpdatedAt, &d.LeaseExpiresAt} {
		*t = t.UTC()
	}
	return nil
}

// durableCommit is a select list item that makes the transaction's commit wait for its
// WAL to reach disk whatever the server's or the role's default: with synchronous_commit
// off, a server crash can lose a commit the client was told of, and an accepted event
// with it. A stricter setting (remote_write, remote_apply) is kept. It is evaluated at
// commit, so it goes in whichever statement of the transaction is convenient.
const durableCommit = `set_config('synchronous_commit', CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END, true)`

// Get implements webhook.Store.
func (s *Store) Get(ctx context.Context, id string) (webhook.Delivery, error) {
	if err := s.check(ctx); err != nil {
		return webhook.Delivery{}, err
	}
	var d webhook.Delivery
	err := scanDelivery(s.pool.QueryRow(ctx, "SELECT "+deliveryColumns+" FROM "+s.deliveries+" WHERE id = $1", id), &d)
	if errors.Is(err, pgx.ErrNoRows) {
		return webhook.Delivery{}, fmt.Errorf("%w: %s", webhook.ErrNotFound, id)
	}
	if err != nil {
		return webhook.Delivery{}, wrap("get", err)
	}
	return d, nil
}

// List implements webhook.Store. Filters by endpoint and event use indexes; the cursor is
// the last delivery ID of the previous page.
func (s *Store) List(ctx context.Context, p webhook.ListParams) (webhook.ListResult, error) {
	if err := s.check(ctx); err != nil {
		return webhook.ListResult{}, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = webhook.DefaultListLimit
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if p.EndpointID != "" {
		add("endpoint_id = $?", p.EndpointID)
	}
	if p.EventID != "" {
		add("event_id = $?", p.EventID)
	}
	if p.State != "" {
		add("state = $?", string(p.State))
	}
	if !p.CreatedAfter.IsZero() {
		add("created_at >= $?", p.CreatedAfter)
	}
	if !p.CreatedBefore.IsZero() {
		add("created_at < $?", p.CreatedBefore)
	}
	if p.Cursor != "" {
		add("id > $?", p.Cursor)
	}
	q := "SELECT " + deliveryColumns + " FROM " + s.deliveries
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	q += " ORDER BY id LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return webhook.ListResult{}, wrap("list", err)
	}
	var res webhook.ListResult
	for rows.Next() {
		var d webhook.Delivery
		if err := scanDelivery(rows, &d); err != nil {
			rows.Close()
			return webhook.ListResult{}, wrap("list", err)
		}
		res.Deliveries = append(res.Deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return webhook.ListResult{}, wrap("list", err)
	}
	if len(res.Deliveries) > limit {
		res.Deliveries = res.Deliveries[:limit]
		res.Next = res.Deliveries[limit-1].ID
	}
	return res, nil
}

// Attempts implements webhook.Store.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]webhook.Attempt, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT a.number, a.started_at, a.duration_ns, a.status_code, a.error, a.response_body
		FROM `+s.deliveries+` d LEFT JOIN `+s.attempts+` a ON a.delivery_id = d.id
		WHERE d.id = $1 ORDER BY a.number`, deliveryID)
	if err != nil {
		return nil, wrap("attempts", err)
	}
	var out []webhook.Attempt
	found := false
	for rows.Next() {
		found = true
		var (
			number, status *int32
			started        *time.Time
			duration       *int64
			errText        *string
			body           []byte
		)
		if err := rows.Scan(&number, &started, &duration, &status, &errText, &body); err != nil {
			rows.Close()
			return nil, wrap("attempts", err)
		}
		if number == nil { // the delivery, without attempts
			continue
		}
		out = append(out, webhook.Attempt{
			DeliveryID: deliveryID, Number: int(*number), StartedAt: started.UTC(),
			Duration: time.Duration(*duration), StatusCode: int(*status), Error: *errText, ResponseBody: body,
		})
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("attempts", err)
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", webhook.ErrNotFound, deliveryID)
	}
	return out, nil
}

// Prune implements webhook.Store in one statement, deleting the deliveries' attempts
// with them.
func (s *Store) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var succeeded, failed *time.Time
	if !p.SucceededBefore.IsZero() {
		succeeded = &p.SucceededBefore
	}
	if !p.FailedBefore.IsZero() {
		failed = &p.FailedBefore
	}
	if succeeded == nil && failed == nil {
		return 0, nil
	}
	var n int
	err := s.pool.QueryRow(ctx, `WITH gone AS (
		DELETE FROM `+s.deliveries+`
		WHERE (state = 'succeeded' AND updated_at < $1) OR (state = 'failed' AND updated_at < $2)
		RETURNING id
	), attempts AS (
		DELETE FROM `+s.attempts+` WHERE delivery_id IN (SELECT id FROM gone)
	)
	SELECT count(*) FROM gone`, succeeded, failed).Scan(&n)
	if err != nil {
		return 0, wrap("prune", err)
	}
	return n, nil
}

// check fails calls on a closed store or with a finished context.
func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

func wrap(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return fmt.Errorf("pgstore: %s: the store's tables are missing; call (*Store).Migrate first: %w", op, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}
