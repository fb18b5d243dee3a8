package storetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return webhook.NewMemoryStore(-1) })
}

func TestMemoryStoreCapacity(t *testing.T) {
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := webhook.NewMemoryStore(2)

	require.NoError(t, s.Enqueue(ctx, []store.Delivery{storetest.Delivery("dlv_0001", "ep_a", base)}))
	err := s.Enqueue(ctx, []store.Delivery{
		storetest.Delivery("dlv_0002", "ep_a", base), storetest.Delivery("dlv_0003", "ep_a", base),
	})
	require.ErrorIs(t, err, store.ErrQueueFull, "a batch that does not fit")
	for _, id := range []string{"dlv_0002", "dlv_0003"} {
		_, err := s.Get(ctx, id)
		assert.ErrorIs(t, err, store.ErrNotFound, "%s of the rejected batch", id)
	}
	assert.Equal(t, 1, s.Len())

	require.NoError(t, s.Enqueue(ctx, []store.Delivery{storetest.Delivery("dlv_0002", "ep_a", base)}))
	err = s.Enqueue(ctx, []store.Delivery{storetest.Delivery("dlv_0003", "ep_a", base)})
	require.ErrorIs(t, err, store.ErrQueueFull, "a third delivery")
	_, err = s.Get(ctx, "dlv_0003")
	assert.ErrorIs(t, err, store.ErrNotFound)

	// A retry keeps its place; only a finished delivery makes room.
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: base, Limit: 1, Owner: "owner", LeaseUntil: base.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, s.Record(ctx, store.RecordParams{
		DeliveryID: claimed[0].ID, Owner: "owner", Now: base, State: store.StatePending, NextAttemptAt: base,
	}))
	require.ErrorIs(t, s.Enqueue(ctx, []store.Delivery{storetest.Delivery("dlv_0003", "ep_a", base)}), store.ErrQueueFull)

	claimed, err = s.Claim(ctx, store.ClaimParams{Now: base, Limit: 1, Owner: "owner", LeaseUntil: base.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, s.Record(ctx, store.RecordParams{
		DeliveryID: claimed[0].ID, Owner: "owner", Now: base, State: store.StateSucceeded,
		Attempt: &store.Attempt{StartedAt: base, StatusCode: 200},
	}))
	assert.Equal(t, 1, s.Len())
	require.NoError(t, s.Enqueue(ctx, []store.Delivery{storetest.Delivery("dlv_0003", "ep_a", base)}), "after a delivery finished")
	assert.Equal(t, 2, s.Len())
}

// TestMemoryStoreKeepsAtMostCapacitySucceeded shows the memory store's bound on finished
// deliveries: the oldest succeeded ones go past capacity, dead letters stay, and a
// requeued delivery counts from its latest success.
func TestMemoryStoreKeepsAtMostCapacitySucceeded(t *testing.T) {
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := webhook.NewMemoryStore(3)
	finish := func(id string, at time.Duration, st store.State) {
		t.Helper()
		now := base.Add(at)
		require.NoError(t, s.Enqueue(ctx, []store.Delivery{storetest.Delivery(id, "ep_a", now)}))
		claimed, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 1, Owner: "o", LeaseUntil: now.Add(time.Minute)})
		require.NoError(t, err)
		require.Len(t, claimed, 1)
		require.NoError(t, s.Record(ctx, store.RecordParams{DeliveryID: id, Owner: "o", Now: now, State: st,
			Attempt: &store.Attempt{StartedAt: now, StatusCode: 200}}))
	}
	finish("dlv_0001", 1*time.Second, store.StateSucceeded)
	finish("dlv_0002", 2*time.Second, store.StateFailed)
	finish("dlv_0003", 3*time.Second, store.StateSucceeded)
	finish("dlv_0004", 4*time.Second, store.StateSucceeded)

	// dlv_0001 is requeued and succeeds again: now the newest success.
	_, err := s.Requeue(ctx, store.RequeueParams{IDs: []string{"dlv_0001"}, Now: base.Add(5 * time.Second)})
	require.NoError(t, err)
	now := base.Add(5 * time.Second)
	_, err = s.Claim(ctx, store.ClaimParams{Now: now, Limit: 1, Owner: "o", LeaseUntil: now.Add(time.Minute)})
	require.NoError(t, err)
	require.NoError(t, s.Record(ctx, store.RecordParams{DeliveryID: "dlv_0001", Owner: "o", Now: now, State: store.StateSucceeded,
		Attempt: &store.Attempt{StartedAt: now, StatusCode: 200}}))

	finish("dlv_0005", 6*time.Second, store.StateSucceeded) // a fourth success: the oldest goes
	_, err = s.Get(ctx, "dlv_0003")
	assert.ErrorIs(t, err, store.ErrNotFound, "the oldest success is dropped")
	for _, id := range []string{"dlv_0001", "dlv_0002", "dlv_0004", "dlv_0005"} {
		_, err := s.Get(ctx, id)
		assert.NoError(t, err, "%s is kept", id)
	}
	assert.Zero(t, s.Len())
}
