-- hooksmith delivery queue, version 1.
-- {{schema}} and {{prefix}} are replaced by the store's schema and table prefix; take the
-- rendered files from pgstore.Migrations to apply them with your own migration tool.

CREATE TABLE "{{schema}}"."{{prefix}}deliveries" (
	id               text        PRIMARY KEY,
	event_id         text        NOT NULL,
	event_type       text        NOT NULL,
	endpoint_id      text        NOT NULL,
	version          text        NOT NULL,
	body             bytea,
	state            text        NOT NULL CHECK (state IN ('pending', 'in_flight', 'succeeded', 'failed')),
	attempts         integer     NOT NULL DEFAULT 0,
	-- every attempt ever made, across requeues: numbers the attempt log
	attempts_total   integer     NOT NULL DEFAULT 0,
	created_at       timestamptz NOT NULL,
	queued_at        timestamptz NOT NULL,
	next_attempt_at  timestamptz NOT NULL,
	updated_at       timestamptz NOT NULL,
	last_status      integer     NOT NULL DEFAULT 0,
	last_error       text        NOT NULL DEFAULT '',
	lease_owner      text        NOT NULL DEFAULT '',
	lease_expires_at timestamptz NOT NULL
);

-- Claim and NextDue: due pending deliveries in order, and expired leases (the rescuer).
CREATE INDEX "{{prefix}}deliveries_pending_idx" ON "{{schema}}"."{{prefix}}deliveries" (next_attempt_at, id)
	WHERE state = 'pending';
CREATE INDEX "{{prefix}}deliveries_in_flight_idx" ON "{{schema}}"."{{prefix}}deliveries" (lease_expires_at)
	WHERE state = 'in_flight';
-- Prune: finished deliveries by age.
CREATE INDEX "{{prefix}}deliveries_finished_idx" ON "{{schema}}"."{{prefix}}deliveries" (state, updated_at)
	WHERE state IN ('succeeded', 'failed');
-- List by endpoint or event, and Requeue by endpoint.
CREATE INDEX "{{prefix}}deliveries_endpoint_idx" ON "{{schema}}"."{{prefix}}deliveries" (endpoint_id, id);
CREATE INDEX "{{prefix}}deliveries_event_idx" ON "{{schema}}"."{{prefix}}deliveries" (event_id);

CREATE TABLE "{{schema}}"."{{prefix}}attempts" (
	delivery_id   text        NOT NULL REFERENCES "{{schema}}"."{{prefix}}deliveries" (id) ON DELETE CASCADE,
	number        integer     NOT NULL,
	started_at    timestamptz NOT NULL,
	duration_ns   bigint      NOT NULL,
	status_code   integer     NOT NULL,
	error         text        NOT NULL,
	response_body bytea,
	PRIMARY KEY (delivery_id, number)
);
