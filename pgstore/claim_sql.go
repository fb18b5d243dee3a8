package pgstore

import (
	"strconv"
	"strings"
)

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

// claimShape selects a variant of the claim statement.
type claimShape struct {
	candidates int  // a power of two, or maxClaimCandidates
	capped     bool // rank by endpoint, for MaxPerEndpoint
	ordered    bool // only the oldest unfinished delivery of ClaimParams.Ordered's endpoints
	window     int  // endpoints are excluded: read only this many of the earliest due (0: all)
	taken      bool // capped, after a first statement: each endpoint's cap less what it took
	hashed     bool // more than linearExcluded endpoints are excluded: test rows by hash
}

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

// endpointDue is the condition "d.endpoint_id = endpoint AND d.next_attempt_at <= due",
// spelled as a range of the (endpoint_id, next_attempt_at, id) index. Spelled as an
// equality, it lets PostgreSQL drop endpoint_id from the ORDER BY and read the due index
// instead, filtering on the endpoint: the very walk over another endpoint's backlog that
// this index is there to avoid, chosen whenever the table holds few endpoints.
func endpointDue(endpoint, due string) string {
	return "(d.endpoint_id, d.next_attempt_at) >= (" + endpoint + ", '-infinity'::timestamptz) AND " +
		"(d.endpoint_id, d.next_attempt_at) <= (" + endpoint + ", " + due + "::timestamptz)"
}
