package pgstore

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

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

// utcOrZero returns *t in UTC, or the zero time for nil.
func utcOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// roundUpPow2 returns the least power of two at least n (n > 0).
func roundUpPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
