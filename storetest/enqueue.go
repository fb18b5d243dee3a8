package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

var enqueueTests = []subtest{
	{"GetReturnsEnqueuedFields", func(t *testing.T, s store.Store) {
		want := Delivery(id(1), "ep_a", at(time.Second))
		want.CreatedAt = at(0)
		want.QueuedAt = at(500 * time.Microsecond)
		want.UpdatedAt = at(0)
		other := Delivery(id(2), "ep_b", at(2*time.Second))
		enqueue(t, s, want, other)

		assertDelivery(t, want, get(t, s, want.ID))
		assertDelivery(t, other, get(t, s, other.ID))
	}},
	{"GetMissing", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)))
		_, err := s.Get(t.Context(), id(2))
		assert.ErrorIs(t, err, store.ErrNotFound)
	}},
	{"SharedBody", func(t *testing.T, s store.Store) {
		// The Sender enqueues one event's deliveries with a single shared body slice.
		a, b := Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(0))
		b.Body = a.Body
		b.EventID = a.EventID
		enqueue(t, s, a, b)
		assertDelivery(t, a, get(t, s, a.ID))
		assertDelivery(t, b, get(t, s, b.ID))
	}},
	{"BatchAllOrNothing", func(t *testing.T, s store.Store) {
		existing := Delivery(id(2), "ep_a", at(0))
		enqueue(t, s, existing)

		dup := Delivery(id(2), "ep_b", at(time.Second))
		err := s.Enqueue(t.Context(), []store.Delivery{
			Delivery(id(1), "ep_b", at(0)), dup, Delivery(id(3), "ep_b", at(0)),
		})
		require.ErrorIs(t, err, store.ErrDuplicateDelivery, "Enqueue of a batch holding an existing ID")

		for _, missing := range []string{id(1), id(3)} {
			_, err := s.Get(t.Context(), missing)
			assert.ErrorIs(t, err, store.ErrNotFound, "%s of the rejected batch was stored", missing)
		}
		assertUnchanged(t, s, existing)
		assert.Equal(t, []string{id(2)}, IDs(claim(t, s, at(time.Hour), "owner")), "claimable deliveries")
	}},
	{"BatchRepeatingAnID", func(t *testing.T, s store.Store) {
		// Storing both would claim one delivery twice; storing either breaks all or none.
		a := Delivery(id(1), "ep_a", at(0))
		err := s.Enqueue(t.Context(), []store.Delivery{a, Delivery(id(2), "ep_a", at(0)), a})
		require.ErrorIs(t, err, store.ErrDuplicateDelivery, "Enqueue of a batch holding one ID twice")
		for _, missing := range []string{id(1), id(2)} {
			_, err := s.Get(t.Context(), missing)
			assert.ErrorIs(t, err, store.ErrNotFound, "%s of the rejected batch was stored", missing)
		}
		assert.Empty(t, claim(t, s, at(time.Hour), "owner"), "claimable deliveries")
	}},
	{"EmptyBatch", func(t *testing.T, s store.Store) {
		// Nothing to store is not an error, and stores nothing.
		require.NoError(t, s.Enqueue(t.Context(), nil), "Enqueue(nil)")
		require.NoError(t, s.Enqueue(t.Context(), []store.Delivery{}), "Enqueue of an empty batch")
		assert.Empty(t, claim(t, s, at(time.Hour), "owner"), "claimable deliveries")
	}},
}
