package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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
	"go.uber.org/zap"
)

// writeTimeout bounds one batched write, whatever the contexts of the calls in it.
const writeTimeout = 30 * time.Second

// A capped claim (ClaimParams.MaxPerEndpoint below Limit) considers more due rows than it
// may take, so that one endpoint's backlog at the head of the queue does not hide other
// endpoints' work behind it: first claimCandidatesFirst per requested delivery, and, only
// if those were all taken up and the claim still came up short, claimCandidatesPerSlot
// per delivery still wanted, up to maxClaimCandidates. Reading, locking and ranking the
// candidates is most of a capped claim's cost, and with many endpoints the first few
// almost always suffice. When even the second read is not enough, the claim returns fewer
// deliveries and the Sender, now at that endpoint's limit, excludes it from the next
// claim.
const (
	claimCandidatesFirst   = 2
	claimCandidatesPerSlot = 16
	maxClaimCandidates     = 4096
)

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

// notExcluded is the condition that col's endpoint is not among the endpoint IDs in the
// text[] parameter param. NOT IN over the unnested array runs as a hashed subplan, one
// lookup per row read. The equivalent "col <> ALL(param)" compares every row with each
// excluded ID whenever PostgreSQL uses the statement's generic plan (a custom plan hashes
// the array, a constant there), and a claim reads past every excluded endpoint's due
// backlog: 1,264 rows behind 100 excluded endpoints took 1.3-1.7 ms that way, 0.5 ms
// hashed. The windowed claim keeps "<> ALL" for a short list (see linearExcluded); the
// stepping statements, run past a full window and for stepFor after one (the claim's and
// NextDue's), and NextDue's windowed one always hash.
func notExcluded(col, param string) string {
	return col + " NOT IN (SELECT unnest(" + param + "::text[]))"
}

func prefixed(p, columns string) string {
	fields := strings.Split(columns, ",")
	for i, f := range fields {
		fields[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
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

// Claim implements webhook.Store: due pending deliveries and expired leases are locked
// with SKIP LOCKED (so concurrent claimers never wait for or return the same row), capped
// per endpoint, and leased. Expired leases come first, then pending deliveries in
// NextAttemptAt order.
//
// A claim that excludes endpoints reads only a window of the earliest due deliveries
// (excludeWindow), since an excluded endpoint's due backlog sits in the same index as
// everyone else's work, ahead of it: without the window, every claim would walk past the
// whole backlog of an endpoint that is down or at its limit, and take time in proportion
// to it. When the window holds too little of the other endpoints' work, a second
// statement claims the rest endpoint by endpoint (beyondWindowQuery), stepping over an
// excluded endpoint's backlog in one index probe.
//
// A pending delivery of an ordered endpoint (ClaimParams.Ordered) is a candidate only if
// it is the endpoint's lowest unfinished ID, found per candidate row by walking the
// (endpoint_id, id) index from its start: that walk passes over the endpoint's finished
// deliveries not yet pruned, so keep ordered endpoints' history pruned. Claims without
// Ordered use a statement without the check.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]webhook.Delivery, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	// The candidate limits are rounded up to a power of two so that a Sender's claims share
	// a few statements (and their cached plans); the exact Limit is a parameter of the
	// final LIMIT, so rows locked beyond it are left as they are.
	exclude := p.ExcludeEndpoints
	if exclude == nil {
		exclude = []string{}
	}
	shape := claimShape{candidates: roundUpPow2(p.Limit), ordered: len(p.Ordered) > 0}
	reach := shape.candidates // the most candidates the claim may read
	if p.MaxPerEndpoint > 0 && p.MaxPerEndpoint < p.Limit {
		reach = min(shape.candidates*claimCandidatesPerSlot, maxClaimCandidates)
		shape.candidates = min(shape.candidates*claimCandidatesFirst, maxClaimCandidates)
		shape.capped = true
	}
	if len(exclude) > 0 {
		// Both statements of a capped claim read the same window, sized for the second.
		shape.window = max(excludeWindow, 2*reach)
		shape.hashed = len(exclude) > linearExcluded
	}
	// The parameters in claimQuery's order, which beyondWindowQuery's follows as a capped,
	// taken shape's: per is each endpoint's cap.
	claimArgs := func(shape claimShape, per, limit int, taken []string, counts []int32) []any {
		args := []any{p.Now, exclude, p.Owner, p.LeaseUntil}
		if shape.capped {
			args = append(args, per)
		}
		if shape.taken {
			args = append(args, taken, counts)
		}
		if shape.ordered {
			args = append(args, p.Ordered)
		}
		return append(args, limit)
	}
	// stepArgs are the arguments of the statement that steps through the endpoints, after
	// have was claimed: a capped claim's endpoints may give what is left of their cap.
	stepArgs := func(have []claimedRow) []any {
		per, taken, counts := p.Limit-len(have), []string{}, []int32{}
		if shape.capped {
			per = p.MaxPerEndpoint
			taken, counts = takenPerEndpoint(have)
		}
		return claimArgs(claimShape{capped: true, taken: true, ordered: shape.ordered}, per, p.Limit-len(have), taken, counts)
	}
	if len(exclude) > 0 && s.stepping() {
		// A claim has just found the window all excluded backlog and work taken, having
		// read it for nothing: step through the endpoints at once (see stepFor).
		rows, _, err := s.runClaim(ctx, s.beyondSQL[boolIndex(shape.ordered)], stepArgs(nil))
		if err != nil {
			return nil, err
		}
		return deliveriesOf(rows), nil
	}
	out, full, err := s.runClaim(ctx, s.claimQuery(shape), claimArgs(shape, p.MaxPerEndpoint, p.Limit, nil, nil))
	if err != nil {
		return nil, err
	}
	if full.candidates && len(out) < p.Limit {
		// The first candidates were too few (one endpoint's deliveries, beyond its cap,
		// filled them): claim the rest from more, each endpoint within what is left of
		// its cap.
		wide := shape
		wide.candidates = reach
		wide.taken = true
		taken, counts := takenPerEndpoint(out)
		rest, restFull, err := s.runClaim(ctx, s.claimQuery(wide), claimArgs(wide, p.MaxPerEndpoint, p.Limit-len(out), taken, counts))
		if err != nil {
			// What the first statement claimed is committed and leased: hand it out
			// rather than leave it to wait for its lease to lapse.
			s.cfg.logger.Warn("pgstore: claiming from more candidates failed", zap.Error(err))
			return deliveriesOf(out), nil
		}
		out, full.window = append(out, rest...), restFull.window
	}
	if full.window && len(out) < p.Limit {
		// The window was all excluded endpoints' backlog and work already taken: look
		// past it, endpoint by endpoint, and do so first for a while.
		s.stepUntil.Store(time.Now().Add(s.stepFor).UnixNano())
		rest, _, err := s.runClaim(ctx, s.beyondSQL[boolIndex(shape.ordered)], stepArgs(out))
		if err != nil {
			// What the first statement claimed is committed and leased: hand it out
			// rather than leave it to wait for its lease to lapse.
			s.cfg.logger.Warn("pgstore: claiming beyond the due window failed", zap.Error(err))
		}
		out = append(out, rest...)
	}
	return deliveriesOf(out), nil
}

func deliveriesOf(rows []claimedRow) []webhook.Delivery {
	ds := make([]webhook.Delivery, len(rows))
	for i := range rows {
		ds[i] = rows[i].d
	}
	return ds
}

// takenPerEndpoint returns the endpoints of rows and how many rows each has.
func takenPerEndpoint(rows []claimedRow) (endpoints []string, counts []int32) {
	endpoints, counts = []string{}, []int32{}
	for _, c := range rows {
		if i := slices.Index(endpoints, c.d.EndpointID); i >= 0 {
			counts[i]++
		} else {
			endpoints, counts = append(endpoints, c.d.EndpointID), append(counts, 1)
		}
	}
	return endpoints, counts
}

// readInIndexOrder sets, for the transaction, what keeps the claim and NextDue
// statements reading their indexes in order, with their LIMITs: no bitmap scan, no
// sequential scan. A plan cached while the table was small (the generic plan, which
// PostgreSQL keeps once it looks no dearer than the custom ones) otherwise reads every
// due row into a bitmap and sorts them all once the backlog grows: 59,000 due rows
// sorted on disk, 90 ms a claim, in the head-of-line scenario on this store.
const readInIndexOrder = "set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)"

// The kinds (k) of the rows a claim statement adds to say that it read all it could: a
// windowed statement's window was full (windowFull), or a capped statement's candidates
// (candidatesFull). They are not deliveries. (Expired leases are 0, pending deliveries 1.)
const (
	windowFull     = -1
	candidatesFull = -2
)

// claimFull says what a claim statement found full (see windowFull and candidatesFull).
type claimFull struct{ window, candidates bool }

// claimedRow is a row of a claim statement.
type claimedRow struct {
	d   webhook.Delivery
	k   int32
	due time.Time
}

// runClaim runs one claim statement and returns its deliveries in claim order, and what
// it found full.
func (s *Store) runClaim(ctx context.Context, query string, args []any) ([]claimedRow, claimFull, error) {
	// A claim only writes leases, which are soft state: if the server crashed and lost
	// one, the delivery would be claimable again and at worst sent twice, which
	// at-least-once allows. So its commit does not wait for the WAL flush; with fsync
	// on, that wait was most of a claim's time, and the dispatcher waits for claims.
	// Enqueue and Record still commit durably.
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('synchronous_commit', 'off', true), " + readInIndexOrder)
	b.Queue(query, args...)
	br := s.pool.SendBatch(ctx, b)
	out, full, err := readClaim(br)
	// The batch is one transaction, committed when it closes: rows read from a claim
	// whose commit failed were never leased, and must not be used.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, claimFull{}, wrap("claim", err)
	}
	slices.SortFunc(out, func(a, b claimedRow) int {
		return cmp.Or(cmp.Compare(a.k, b.k), a.due.Compare(b.due), cmp.Compare(a.d.ID, b.d.ID))
	})
	return out, full, nil
}

// readClaim reads a claim batch's results.
func readClaim(br pgx.BatchResults) ([]claimedRow, claimFull, error) {
	if _, err := br.Exec(); err != nil {
		return nil, claimFull{}, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, claimFull{}, err
	}
	defer rows.Close()
	var out []claimedRow
	var full claimFull
	for rows.Next() {
		var c claimedRow
		if err := scanDelivery(rows, &c.d, &c.k, &c.due); err != nil {
			return nil, claimFull{}, err
		}
		switch c.k {
		case windowFull:
			full.window = true
		case candidatesFull:
			full.candidates = true
		default:
			out = append(out, c)
		}
	}
	return out, full, rows.Err()
}

// durableCommit is a select list item that makes the transaction's commit wait for its
// WAL to reach disk whatever the server's or the role's default: with synchronous_commit
// off, a server crash can lose a commit the client was told of, and an accepted event
// with it. A stricter setting (remote_write, remote_apply) is kept. It is evaluated at
// commit, so it goes in whichever statement of the transaction is convenient.
const durableCommit = `set_config('synchronous_commit', CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END, true)`

// claimShape selects a variant of the claim statement.
type claimShape struct {
	candidates int  // a power of two, or maxClaimCandidates
	capped     bool // rank by endpoint, for MaxPerEndpoint
	ordered    bool // only the oldest unfinished delivery of ClaimParams.Ordered's endpoints
	window     int  // endpoints are excluded: read only this many of the earliest due (0: all)
	taken      bool // capped, after a first statement: each endpoint's cap less what it took
	hashed     bool // more than linearExcluded endpoints are excluded: test rows by hash
}

// linearExcluded is the most excluded endpoints a claim tests each row against one by one
// ("<> ALL"); beyond it, by hash (notExcluded), whose set-up costs a few tens of
// microseconds a claim that a short list does not repay.
const linearExcluded = 8

// stepFor is how long, after a claim found the due window all excluded endpoints'
// backlog and work already taken, claims that exclude endpoints step through the
// endpoints (beyondWindowQuery) without reading the window first. An excluded endpoint's
// backlog is at the front of the due order, and stays there while it is excluded: in the
// head-of-line scenario on this store, reading the window took 8 ms a claim and stepping
// 3.3 ms, which found the same work. The window is tried again after stepFor, since
// excluded endpoints come back and the window is cheaper when its first rows suffice.
const stepFor = time.Second

// stepping reports whether claims and NextDue that exclude endpoints step through the
// endpoints without reading the due window first (see stepFor).
func (s *Store) stepping() bool { return time.Now().UnixNano() < s.stepUntil.Load() }

// excludeWindow is how many of the earliest due pending deliveries a claim or NextDue
// that excludes endpoints reads, at least: enough that the other endpoints' work is
// almost always among them, few enough that reading them all is cheap.
const excludeWindow = 1024

// orderedClause returns the condition that restricts an ordered endpoint's pending
// deliveries (rows d) to its lowest unfinished ID, with the endpoints in parameter param.
// The subquery reads the (endpoint_id, id) index in order and stops at the first pending
// or in-flight row. The OR's first arm spares every other endpoint the lookup. Rows a
// concurrent claim has locked are still pending in this snapshot, so they block too.
func (s *Store) orderedClause(param string) string {
	return `
	AND (d.endpoint_id <> ALL(` + param + `::text[]) OR d.id = (
		SELECT min(d2.id) FROM ` + s.deliveries + ` d2
		WHERE d2.endpoint_id = d.endpoint_id AND d2.state IN ('pending', 'in_flight')))`
}

// claimReturning is the tail of every claim statement: lease the picked rows.
func (s *Store) claimReturning() string {
	return `UPDATE ` + s.deliveries + ` d SET state = 'in_flight', lease_owner = $3, lease_expires_at = $4, updated_at = $1
FROM picked WHERE d.id = picked.id
RETURNING ` + prefixed("d.", deliveryColumns) + `, picked.k, picked.due`
}

// claimQuery returns the claim statement for shape. The candidate limits are literals,
// not parameters: PostgreSQL's cached generic plan must know a claim wants a few rows, or
// it guesses a third of the due range and sorts all of it rather than reading the partial
// index in order. They are powers of two, so a Sender uses a handful of shapes; the exact
// Limit is the last parameter, applied to the picked rows.
//
// The candidate CTEs lock with SKIP LOCKED so concurrent claimers pass over each other's
// rows rather than queueing on them; each reads a partial index in order.
func (s *Store) claimQuery(shape claimShape) string {
	if q, ok := s.claimSQL.Load(shape); ok {
		return q.(string)
	}
	// $1 to $4 are now, the excluded endpoints, the owner and the lease; then the cap if
	// capped, the endpoints and counts already taken if taken, the ordered endpoints if
	// ordered, and the exact limit last.
	n := 5
	param := func() string {
		n++
		return "$" + strconv.Itoa(n-1)
	}
	capParam, takenParam, countsParam, orderedParam := "", "", "", ""
	if shape.capped {
		capParam = param()
	}
	if shape.taken {
		takenParam, countsParam = param(), param()
	}
	if shape.ordered {
		orderedParam = param()
	}
	cand, limit := strconv.Itoa(shape.candidates), param()+"::int"
	picked := `SELECT id, k, due FROM (SELECT * FROM expired UNION ALL SELECT * FROM pending) c
	ORDER BY k, due, id LIMIT ` + limit
	if shape.capped {
		picked = cappedPick(capParam, takenParam, countsParam, limit)
	}
	ordered := ""
	if shape.ordered {
		ordered = s.orderedClause(orderedParam)
	}
	// The window's last row bounds the pending scan as an index condition; with fewer
	// due rows than the window there is no bound ('infinity').
	window, bound := "", ""
	if shape.window > 0 {
		window = s.dueWindow(" AND next_attempt_at <= $1", shape.window) + ", "
		bound = "\n\tAND " + withinWindow
	}
	notExcl := notExcluded("endpoint_id", "$2")
	if !shape.hashed {
		notExcl = "endpoint_id <> ALL($2::text[])"
	}
	tail := s.claimReturning()
	if shape.window > 0 || shape.capped {
		// The leased rows, then a row saying the window was full, if it was, and one
		// saying the candidates were.
		tail = ", claimed AS (\n" + tail + "\n)\nSELECT * FROM claimed"
		if shape.window > 0 {
			tail += "\nUNION ALL\n" + sentinelRow(windowFull, "at", "bound")
		}
		if shape.capped {
			tail += "\nUNION ALL\n" + sentinelRow(candidatesFull, "$1::timestamptz",
				"(SELECT WHERE (SELECT count(*) FROM pending) >= "+cand+" OR (SELECT count(*) FROM expired) >= "+cand+") f")
		}
	}
	q := `
WITH ` + window + s.expiredLeases(notExcl, cand) + `, pending AS (
	SELECT id, endpoint_id, 1 AS k, next_attempt_at AS due FROM ` + s.deliveries + ` d
	WHERE state = 'pending' AND next_attempt_at <= $1 AND ` + notExcl + bound + ordered + `
	ORDER BY next_attempt_at, id LIMIT ` + cand + ` FOR UPDATE SKIP LOCKED
), picked AS (
	` + picked + `
)
` + tail
	s.claimSQL.Store(shape, q)
	return q
}

// cappedPick is the "picked" CTE of a capped claim statement: the expired and pending
// candidates, each endpoint's first ones in claim order up to the cap in parameter
// capParam (less what it took already, endpoints and counts in takenParam and
// countsParam, if those are not ""), then up to limit of them in claim order.
func cappedPick(capParam, takenParam, countsParam, limit string) string {
	rank, taken := "row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.k, c.due, c.id)", ""
	if takenParam != "" {
		rank += " + coalesce(t.n, 0)"
		taken = "\n\t\tLEFT JOIN unnest(" + takenParam + "::text[], " + countsParam + "::int[]) AS t(id, n) ON t.id = c.endpoint_id"
	}
	return `SELECT id, k, due FROM (
		SELECT c.id, c.k, c.due, ` + rank + ` AS rn
		FROM (SELECT * FROM expired UNION ALL SELECT * FROM pending) c` + taken + `
	) r WHERE rn <= ` + capParam + `::int ORDER BY k, due, id LIMIT ` + limit
}

// expiredLeases is the "expired" CTE of a claim statement: up to limit in-flight
// deliveries whose lease has expired by $1, of the endpoints notExcl lets through, in the
// order their leases expired.
func (s *Store) expiredLeases(notExcl, limit string) string {
	return `expired AS (
	SELECT id, endpoint_id, 0 AS k, lease_expires_at AS due FROM ` + s.deliveries + `
	WHERE state = 'in_flight' AND lease_expires_at <= $1 AND ` + notExcl + `
	ORDER BY lease_expires_at LIMIT ` + limit + ` FOR UPDATE SKIP LOCKED
)`
}

// sentinelRow returns a claim statement's row of kind k (windowFull or candidatesFull)
// for each row of from: a placeholder for each of deliveryColumns, then k, with the time
// at wherever one is wanted.
func sentinelRow(k int, at, from string) string {
	return "SELECT '', '', '', '', '', NULL, '', 0, " + at + ", " + at + ", " + at + ", " + at + ", 0, '', '', " + at + ", " +
		strconv.Itoa(k) + ", " + at + " FROM " + from
}

// beyondWindowQuery returns the statement that claims past a full window: it steps from
// one endpoint with pending deliveries to the next along the (endpoint_id,
// next_attempt_at) index (pendingEndpoints), takes each endpoint's earliest due time, and
// claims from the endpoints due first. Each may give $5 rows less what the first
// statement took from it ($6 and $7: endpoint IDs and counts); $8 is the ordered
// endpoints if ordered; the limit, last, bounds the rows and the endpoints. It takes
// expired leases first, as the first statement does, since it also runs in its stead
// (see stepFor), and each endpoint's expired leases and pending deliveries together
// stay within its $5. buildSQL calls it once for each variant.
func (s *Store) beyondWindowQuery(ordered bool) string {
	limit, clause := "$8::int", ""
	if ordered {
		limit, clause = "$9::int", s.orderedClause("$8")
	}
	return `
WITH RECURSIVE ` + s.pendingEndpoints() + `, firsts AS (
	SELECT e.id, e.at, $5::int - coalesce(t.n, 0) AS room
	FROM endpoints e LEFT JOIN unnest($6::text[], $7::int[]) AS t(id, n) ON t.id = e.id
	WHERE e.at <= $1 AND ` + notExcluded("e.id", "$2") + ` AND $5::int - coalesce(t.n, 0) > 0
	ORDER BY e.at LIMIT ` + limit + `
), pending AS (
	SELECT c.* FROM firsts f CROSS JOIN LATERAL (
		SELECT d.id, d.endpoint_id, 1 AS k, d.next_attempt_at AS due FROM ` + s.deliveries + ` d
		WHERE d.state = 'pending' AND ` + endpointDue("f.id", "$1") + clause + `
		ORDER BY d.endpoint_id, d.next_attempt_at, d.id LIMIT f.room FOR UPDATE SKIP LOCKED) c
), ` + s.expiredLeases(notExcluded("endpoint_id", "$2"), limit) + `, picked AS (
	` + cappedPick("$5", "$6", "$7", limit) + `
)
` + s.claimReturning()
}

// dueWindow is the CTE "bound": the last of the earliest size pending deliveries (those
// that also meet cond), or no row if there are fewer. withinWindow tests a row d
// against it.
func (s *Store) dueWindow(cond string, size int) string {
	return `bound AS MATERIALIZED (
	SELECT next_attempt_at AS at, id FROM ` + s.deliveries + `
	WHERE state = 'pending'` + cond + `
	ORDER BY next_attempt_at, id OFFSET ` + strconv.Itoa(size-1) + ` LIMIT 1
)`
}

// withinWindow is the condition that row d is in dueWindow's window, as an index
// condition on (next_attempt_at, id); with no bound (fewer pending than the window) every
// row is.
const withinWindow = `(d.next_attempt_at, d.id) <= (coalesce((SELECT at FROM bound), 'infinity'), coalesce((SELECT id FROM bound), ''))`

// pendingEndpoints is the recursive CTE "endpoints": every endpoint with a pending
// delivery, in order, with its earliest pending delivery's next_attempt_at as "at",
// found one index probe each, however many deliveries an endpoint has. (The probe's row
// is the endpoint's first in (endpoint_id, next_attempt_at, id) order, so it gives "at"
// too: a second probe per endpoint for it cost a third of a stepping claim.)
func (s *Store) pendingEndpoints() string {
	return `endpoints(id, at) AS (
	(SELECT endpoint_id, next_attempt_at FROM ` + s.deliveries + ` WHERE state = 'pending'
		ORDER BY endpoint_id, next_attempt_at, id LIMIT 1)
	UNION ALL
	SELECT n.endpoint_id, n.next_attempt_at FROM endpoints e CROSS JOIN LATERAL (
		SELECT d.endpoint_id, d.next_attempt_at FROM ` + s.deliveries + ` d WHERE d.state = 'pending' AND d.endpoint_id > e.id
		ORDER BY d.endpoint_id, d.next_attempt_at, d.id LIMIT 1) n
)`
}

// Record implements webhook.Store. Concurrent calls are written together in one round
// trip and transaction (see WithBatchSize); each is atomic on its own and gets its own
// result.
func (s *Store) Record(ctx context.Context, p store.RecordParams) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	switch p.State {
	case webhook.StatePending, webhook.StateSucceeded, webhook.StateFailed:
	default:
		return fmt.Errorf("%w: Record to state %q; want pending, succeeded or failed", webhook.ErrInvalidState, p.State)
	}
	return s.records.do(ctx, p)
}

func (s *Store) writeRecords(reqs []*request[store.RecordParams]) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	// A delivery recorded twice in one batch (a lost lease racing its new holder) goes in
	// a later statement of the same transaction, so each statement updates a row once.
	var rounds [][]*request[store.RecordParams]
	seen := make(map[string]int, len(reqs)) // delivery ID -> rounds it is in
	retry := false
	for _, r := range reqs {
		n := seen[r.arg.DeliveryID]
		seen[r.arg.DeliveryID] = n + 1
		if n == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[n] = append(rounds[n], r)
		retry = retry || r.arg.State == webhook.StatePending
	}
	b := &pgx.Batch{}
	// The planner expects one row from the ANY($1) index scan, so it joins the input to
	// the updated rows (and the attempts to them) in nested loops, rescanning the whole
	// batch per row: quadratic in the batch size. Hash joins instead; and no sequential
	// scan, which a plan made while the table was small would keep using as it grows.
	// For this transaction only (the batch is one implicit transaction; the settings end
	// with it).
	b.Queue("SELECT set_config('enable_nestloop', 'off', true), set_config('enable_seqscan', 'off', true), " + durableCommit)
	for _, round := range rounds {
		b.Queue(s.recordSQL, recordArgs(round)...)
	}
	if retry {
		// A retry may be due sooner than other Senders' next look: tell them at commit.
		b.Queue("SELECT pg_notify($1, '')", s.cfg.channel)
	}
	br := s.pool.SendBatch(ctx, b)
	br.Exec() // a failure here fails the statements after it, reported below
	errs := make(map[*request[store.RecordParams]]error, len(reqs))
	for _, round := range rounds {
		rows, _ := br.Query()
		var ord int64
		var updated, exists bool
		_, err := pgx.ForEachRow(rows, []any{&ord, &updated, &exists}, func() error {
			r := round[ord-1]
			switch {
			case !exists:
				errs[r] = fmt.Errorf("%w: %s", webhook.ErrNotFound, r.arg.DeliveryID)
			case !updated:
				errs[r] = fmt.Errorf("%w: %s", store.ErrLeaseLost, r.arg.DeliveryID)
			}
			return nil
		})
		if err != nil {
			for _, r := range round {
				errs[r] = wrap("record", err)
			}
		}
	}
	if err := br.Close(); err != nil { // the commit failed: nothing was written
		for _, r := range reqs {
			errs[r] = wrap("record", err)
		}
	}
	for _, r := range reqs {
		r.done <- errs[r]
	}
}

func recordArgs(reqs []*request[store.RecordParams]) []any {
	n := len(reqs)
	var (
		ids, owners, states, errTexts, reasons = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		hasAttempt, statuses                   = make([]int32, n), make([]int32, n)
		nows, nexts, starts                    = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		durations                              = make([]int64, n)
		bodies                                 = make([][]byte, n)
	)
	for i, r := range reqs {
		p := &r.arg
		ids[i], owners[i], states[i], reasons[i] = p.DeliveryID, p.Owner, string(p.State), p.Reason
		nows[i], nexts[i] = p.Now, p.NextAttemptAt
		if a := p.Attempt; a != nil {
			hasAttempt[i], statuses[i], errTexts[i] = 1, int32(a.StatusCode), a.Error
			starts[i], durations[i], bodies[i] = a.StartedAt, int64(a.Duration), a.ResponseBody
		}
	}
	return []any{ids, owners, states, hasAttempt, statuses, errTexts, reasons, nows, nexts, starts, durations, bodies, string(webhook.StateInFlight)}
}

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

// NextDue implements webhook.Store with two index lookups.
func (s *Store) NextDue(ctx context.Context, exclude []string) (time.Time, error) {
	if err := s.check(ctx); err != nil {
		return time.Time{}, err
	}
	if exclude == nil {
		exclude = []string{}
	}
	var next *time.Time
	if len(exclude) == 0 {
		if err := s.pool.QueryRow(ctx, s.nextDueSQL).Scan(&next); err != nil {
			return time.Time{}, wrap("next due", err)
		}
		return utcOrZero(next), nil
	}
	// As a claim does (see Claim), read only a window of the earliest pending deliveries:
	// the first not excluded is the earliest. If the window holds none, step from
	// endpoint to endpoint instead; and while claims step (stepFor), step at once. The
	// stepping statement has the leases too.
	step := s.stepping()
	if !step {
		if err := s.queryInIndexOrder(ctx, s.nextDueWindowSQL, exclude, &next, &step); err != nil {
			return time.Time{}, wrap("next due", err)
		}
	}
	if step {
		var beyond *time.Time
		if err := s.queryInIndexOrder(ctx, s.nextDueBeyondSQL, exclude, &beyond); err != nil {
			return time.Time{}, wrap("next due", err)
		}
		if beyond != nil && (next == nil || beyond.Before(*next)) {
			next = beyond
		}
	}
	return utcOrZero(next), nil
}

// queryInIndexOrder scans the one row of query (its one parameter: exclude) into dest,
// in a transaction that reads indexes in order (readInIndexOrder).
func (s *Store) queryInIndexOrder(ctx context.Context, query string, exclude []string, dest ...any) error {
	b := &pgx.Batch{}
	b.Queue("SELECT " + readInIndexOrder)
	b.Queue(query, exclude).QueryRow(func(row pgx.Row) error { return row.Scan(dest...) })
	return s.pool.SendBatch(ctx, b).Close()
}

// boolIndex is 1 for true, 0 for false.
func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// endpointDue is the condition "d.endpoint_id = endpoint AND d.next_attempt_at <= due",
// spelled as a range of the (endpoint_id, next_attempt_at, id) index. Spelled as an
// equality, it lets PostgreSQL drop endpoint_id from the ORDER BY and read the due index
// instead, filtering on the endpoint: the very walk over another endpoint's backlog that
// this index is there to avoid, chosen whenever the table holds few endpoints.
func endpointDue(endpoint, due string) string {
	return "(d.endpoint_id, d.next_attempt_at) >= (" + endpoint + ", '-infinity'::timestamptz) AND " +
		"(d.endpoint_id, d.next_attempt_at) <= (" + endpoint + ", " + due + "::timestamptz)"
}

// utcOrZero returns *t in UTC, or the zero time for nil.
func utcOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
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

// roundUpPow2 returns the least power of two at least n (n > 0).
func roundUpPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
