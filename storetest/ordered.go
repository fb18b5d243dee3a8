package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

// orderedTests check ClaimParams.Ordered: an ordered endpoint gives out only its oldest
// unfinished delivery, whatever the due times of the others.
var orderedTests = []subtest{
	{"OnlyTheHead", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_fifo", at(0)), Delivery(id(2), "ep_fifo", at(0)),
			Delivery(id(3), "ep_fifo", at(0)), Delivery(id(4), "ep_free", at(0)), Delivery(id(5), "ep_free", at(0)))
		got := claimOrdered(t, s, at(0), "ep_fifo")
		assert.ElementsMatch(t, []string{id(1), id(4), id(5)}, IDs(got), "one delivery of the ordered endpoint, all of the other")
		// While the head is in flight, nothing more of its endpoint.
		assert.Empty(t, IDs(claimOrdered(t, s, at(time.Second), "ep_fifo")))
	}},
	{"HeadWaitingForRetryBlocksTheRest", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_fifo", at(0)), Delivery(id(2), "ep_fifo", at(time.Second)))
		got := claimOrdered(t, s, at(0), "ep_fifo")
		require.Equal(t, []string{id(1)}, IDs(got))
		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner", Now: at(0), Attempt: attempt(at(0), 500),
			State: store.StatePending, NextAttemptAt: at(time.Minute),
		}))
		// id(2) is due at 1s, but the head is not due until 1m.
		assert.Empty(t, IDs(claimOrdered(t, s, at(30*time.Second), "ep_fifo")))
		assert.Equal(t, []string{id(1)}, IDs(claimOrdered(t, s, at(time.Minute), "ep_fifo")))
	}},
	{"NextAfterTheHeadFinishes", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_fifo", at(0)), Delivery(id(2), "ep_fifo", at(0)))
		require.Equal(t, []string{id(1)}, IDs(claimOrdered(t, s, at(0), "ep_fifo")))
		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner", Now: at(0), Attempt: attempt(at(0), 400), State: store.StateFailed,
		}))
		assert.Equal(t, []string{id(2)}, IDs(claimOrdered(t, s, at(0), "ep_fifo")), "a dead head lets the next go")
	}},
	{"UnorderedEndpointUnaffected", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_a", at(0)))
		assert.Len(t, claimOrdered(t, s, at(0), "ep_other"), 2)
	}},
}

func claimOrdered(t *testing.T, s store.Store, now time.Time, ordered ...string) []store.Delivery {
	t.Helper()
	ds, err := s.Claim(t.Context(), store.ClaimParams{
		Now: now, Limit: 100, Owner: "owner", LeaseUntil: now.Add(time.Hour), Ordered: ordered,
	})
	require.NoError(t, err, "Claim")
	return ds
}
