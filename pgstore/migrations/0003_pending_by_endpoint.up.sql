-- hooksmith delivery queue, version 3: pending deliveries by endpoint.
-- A claim or NextDue that excludes endpoints (at their limit, paused, circuit open) reads
-- only a window of the earliest due deliveries; when an excluded endpoint's backlog fills
-- it, the store steps from endpoint to endpoint along this index instead, one probe per
-- endpoint rather than a row read per delivery of the backlog.
-- On a large table, you may prefer to build it yourself first with CREATE INDEX
-- CONCURRENTLY under this name: IF NOT EXISTS then leaves it be.

CREATE INDEX IF NOT EXISTS "{{prefix}}deliveries_endpoint_pending_idx" ON "{{schema}}"."{{prefix}}deliveries" (endpoint_id, next_attempt_at, id)
	WHERE state = 'pending';
