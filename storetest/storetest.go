// Package storetest is the conformance suite for store.Store implementations: every store
// the Sender runs over (the memory store, the file store, the PostgreSQL store, or your own)
// must pass it, so the Sender's own tests can prove the rest.
//
// # Usage
//
// Call Run from a test in the store's package, with a function that returns a new, empty
// store for each subtest:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := mystore.Open(t.TempDir())
//			require.NoError(t, err)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// # What it assumes
//
// The suite passes explicit times to every call (it never sleeps), all built from
// 2026-01-01T00:00:00Z and whole microseconds (attempt durations too), so a store may keep
// times at microsecond precision (as PostgreSQL does) and in any location. Bodies and
// response bodies are compared byte for byte, so a store must keep them unchanged (not
// re-encode them, as a PostgreSQL jsonb column would). Delivery IDs are "dlv_" and four
// digits, so their order is the same under any text collation.
package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

// base is the time every subtest counts from; whole seconds, so it survives any store's
// precision.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at returns base plus d, truncated to microseconds as PostgreSQL would store it.
func at(d time.Duration) time.Time { return base.Add(d).Truncate(time.Microsecond) }

// Run runs the conformance suite against stores made by newStore. newStore is called once
// per subtest and must return an empty store; it should register cleanup with t.Cleanup.
// Subtests run one after another, never in parallel, so stores made by newStore may share
// a database as long as each starts empty.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []subtest
	}{
		{"Enqueue", enqueueTests},
		{"Claim", claimTests},
		{"Ordered", orderedTests},
		{"Record", recordTests},
		{"Attempts", attemptsTests},
		{"List", listTests},
		{"Requeue", requeueTests},
		{"NextDue", nextDueTests},
		{"Prune", pruneTests},
		{"Context", contextTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					s := newStore(t)
					require.NotNil(t, s, "newStore returned a nil store")
					tt.run(t, s)
				})
			}
		})
	}
}

// subtest is one check of the suite, given a new, empty store.
type subtest struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// Delivery returns a pending delivery ready for Store.Enqueue, as the Sender builds one:
// created, queued, updated and due at due (truncated to microseconds), with an event ID,
// type, version and JSON body derived from id. Change any field of the result as a test
// needs.
func Delivery(id, endpointID string, due time.Time) store.Delivery {
	due = due.Truncate(time.Microsecond)
	return store.Delivery{
		ID:         id,
		EventID:    "evt_" + id,
		EventType:  "invoice.paid",
		EndpointID: endpointID,
		Version:    "2026-01-01",
		// Keys out of order and no spaces: a store that re-encodes JSON changes these bytes.
		Body:          []byte(`{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"` + id + `"}}`),
		State:         store.StatePending,
		CreatedAt:     due,
		QueuedAt:      due,
		NextAttemptAt: due,
		UpdatedAt:     due,
	}
}

// id returns the i'th test delivery ID; fixed width, so ID order is numeric order.
func id(i int) string { return fmt.Sprintf("dlv_%04d", i) }

// enqueue stores ds, failing the test on error.
func enqueue(t *testing.T, s store.Store, ds ...store.Delivery) {
	t.Helper()
	require.NoError(t, s.Enqueue(t.Context(), ds), "Enqueue")
}

// get returns the delivery id, failing the test on error.
func get(t *testing.T, s store.Store, id string) store.Delivery {
	t.Helper()
	d, err := s.Get(t.Context(), id)
	require.NoError(t, err, "Get(%s)", id)
	return d
}

// claim claims up to 1000 deliveries due at now for owner, leased for a minute.
func claim(t *testing.T, s store.Store, now time.Time, owner string) []store.Delivery {
	t.Helper()
	ds, err := s.Claim(t.Context(), store.ClaimParams{
		Now: now, Limit: 1000, Owner: owner, LeaseUntil: now.Add(time.Minute),
	})
	require.NoError(t, err, "Claim")
	return ds
}

// IDs returns the IDs of ds in order, nil for none (so a store may return either a nil
// or an empty slice).
func IDs(ds []store.Delivery) []string {
	var out []string
	for i := range ds {
		out = append(out, ds[i].ID)
	}
	return out
}

// attempt returns the attempt a Sender would record for a response with status (0 for no
// response) started at start.
func attempt(start time.Time, status int) *store.Attempt {
	a := &store.Attempt{StartedAt: start, Duration: 120 * time.Millisecond, StatusCode: status}
	switch {
	case status == 0:
		a.Error = "dial tcp 127.0.0.1:9: connect: connection refused"
	case status >= 300:
		a.Error = fmt.Sprintf("unexpected status %d", status)
		a.ResponseBody = []byte("try later")
	default:
		a.ResponseBody = []byte("ok")
	}
	return a
}

// settle claims everything due at now, requires it to be exactly the deliveries named in
// outcome, and records one attempt for each leaving it in the given state (a pending one is
// due again an hour later). Tests use it to put deliveries into finished states; their
// other deliveries must not be due at now.
func settle(t *testing.T, s store.Store, now time.Time, outcome map[string]store.State) {
	t.Helper()
	claimed := claim(t, s, now, "settler")
	want := make([]string, 0, len(outcome))
	for id := range outcome {
		want = append(want, id)
	}
	require.ElementsMatch(t, want, IDs(claimed), "deliveries due at %s", now)
	for _, d := range claimed {
		state := outcome[d.ID]
		status := 200
		if state != store.StateSucceeded {
			status = 500
		}
		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: d.ID, Owner: "settler", Now: now,
			Attempt: attempt(now, status), State: state, NextAttemptAt: now.Add(time.Hour),
		}), "Record(%s)", d.ID)
	}
}

// assertTime checks that got is the same instant as want.
func assertTime(t *testing.T, want, got time.Time, field string) bool {
	t.Helper()
	return assert.Truef(t, want.Equal(got), "%s: want %s, got %s", field, want, got)
}

// assertBytes checks that got holds the same bytes as want (nil and empty are equal).
func assertBytes(t *testing.T, want, got []byte, field string) bool {
	t.Helper()
	return assert.Truef(t, bytes.Equal(want, got), "%s: want %q, got %q", field, want, got)
}

// assertDelivery checks every field of got against want.
func assertDelivery(t *testing.T, want, got store.Delivery) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID, "ID")
	assert.Equal(t, want.EventID, got.EventID, "EventID")
	assert.Equal(t, want.EventType, got.EventType, "EventType")
	assert.Equal(t, want.EndpointID, got.EndpointID, "EndpointID")
	assert.Equal(t, want.Version, got.Version, "Version")
	assertBytes(t, want.Body, got.Body, "Body")
	assert.Equal(t, want.State, got.State, "State")
	assert.Equal(t, want.Attempts, got.Attempts, "Attempts")
	assertTime(t, want.CreatedAt, got.CreatedAt, "CreatedAt")
	assertTime(t, want.QueuedAt, got.QueuedAt, "QueuedAt")
	assertTime(t, want.NextAttemptAt, got.NextAttemptAt, "NextAttemptAt")
	assertTime(t, want.UpdatedAt, got.UpdatedAt, "UpdatedAt")
	assert.Equal(t, want.LastStatus, got.LastStatus, "LastStatus")
	assert.Equal(t, want.LastError, got.LastError, "LastError")
	assert.Equal(t, want.LeaseOwner, got.LeaseOwner, "LeaseOwner")
	assertTime(t, want.LeaseExpiresAt, got.LeaseExpiresAt, "LeaseExpiresAt")
}

// assertUnchanged checks that the deliveries in before are still stored as they were.
func assertUnchanged(t *testing.T, s store.Store, before ...store.Delivery) {
	t.Helper()
	for _, d := range before {
		assertDelivery(t, d, get(t, s, d.ID))
	}
}

// assertGone checks that id and its attempts are no longer stored.
func assertGone(t *testing.T, s store.Store, id string) {
	t.Helper()
	_, err := s.Get(t.Context(), id)
	assert.ErrorIs(t, err, store.ErrNotFound, "Get(%s)", id)
	_, err = s.Attempts(t.Context(), id)
	assert.ErrorIs(t, err, store.ErrNotFound, "Attempts(%s)", id)
}

// listAll pages through every delivery matching p with page size limit.
func listAll(t *testing.T, s store.Store, p store.ListParams) []string {
	t.Helper()
	var out []string
	for page := 0; ; page++ {
		require.Less(t, page, 10_000, "List never returned an empty Next")
		res, err := s.List(t.Context(), p)
		require.NoError(t, err, "List")
		out = append(out, IDs(res.Deliveries)...)
		if res.Next == "" {
			return out
		}
		p.Cursor = res.Next
	}
}

// ctxCanceled returns a context that is already canceled.
func ctxCanceled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
