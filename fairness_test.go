package webhook_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestSlowEndpointDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	rep := newReports()
	s := newSender(t, webhook.WithWorkers(4), rep.hooks(), webhook.WithEndpoints(
		webhook.Endpoint{ID: "slow", URL: hang.URL, Secret: secret, EventTypes: []string{"slow.*"}},
		webhook.Endpoint{ID: "fast", URL: recv.URL, Secret: secret, EventTypes: []string{"fast.*"}},
	))
	ctx := testCtx(t)
	// A backlog for the hanging endpoint first, larger than the worker pool.
	for range 20 {
		_, err := s.Send(ctx, webhook.Event{Type: "slow.x"})
		require.NoError(t, err)
	}
	for range 30 {
		_, err := s.Send(ctx, webhook.Event{Type: "fast.x"})
		require.NoError(t, err)
	}
	// The fast endpoint gets everything while the slow one still hangs (its attempts
	// time out only after DefaultTimeout, far beyond this wait).
	require.NoError(t, recv.WaitVerified(ctx, 30))
	pending, err := s.Deliveries(ctx, webhook.ListParams{EndpointID: "slow", State: webhook.StatePending})
	require.NoError(t, err)
	assert.NotEmpty(t, pending.Deliveries, "slow endpoint capped below the pool size")

	// Closing with a short grace aborts the hanging attempts and leaves them pending.
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Close(closeCtx), context.DeadlineExceeded)
	stuck, err := s.Deliveries(ctx, webhook.ListParams{EndpointID: "slow", State: webhook.StatePending, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, stuck.Deliveries, 20, "nothing accepted is lost")
}

func TestLoneEndpointBurstsPastItsFairShareButLeavesAReserve(t *testing.T) {
	t.Parallel()
	// Fair share 4 attempts; bursting, 7 (one worker in reserve): a bursting endpoint's
	// claims are its attempts, so none of them waits in the buffer for the reserve.
	const workers = 8
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 64)}
	s, err := webhook.NewSender(webhook.WithWorkers(workers), webhook.WithStore(store), loopback, webhook.WithEndpoints(
		webhook.Endpoint{ID: "busy", URL: hang.URL, Secret: secret, EventTypes: []string{"busy.*"}},
		webhook.Endpoint{ID: "other", URL: recv.URL, Secret: secret, EventTypes: []string{"other.*"}},
	))
	require.NoError(t, err)
	ctx := testCtx(t)
	for range 20 {
		_, err := s.Send(ctx, webhook.Event{Type: "busy.x"})
		require.NoError(t, err)
	}
	receiveN(t, ctx, store.claimed, workers-1, "the lone endpoint did not claim past its fair share")
	receiveN(t, ctx, hang.started, workers-1, "the lone endpoint did not run past its fair share")
	inFlight, err := store.List(ctx, webhook.ListParams{EndpointID: "busy", State: webhook.StateInFlight, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, inFlight.Deliveries, workers-1, "claimed: all but the reserve")

	// Work for another endpoint finds the reserved worker at once.
	_, err = s.Send(ctx, webhook.Event{Type: "other.x"})
	require.NoError(t, err)
	require.NoError(t, recv.WaitVerified(ctx, 1))

	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Close(closeCtx), context.DeadlineExceeded)
	assert.Len(t, hang.started, 0, "no attempt beyond the burst limit started")
}

func TestALoneEnabledEndpointMayUseEveryWorker(t *testing.T) {
	t.Parallel()
	// The reserve a bursting endpoint leaves is for other endpoints' work; with no other
	// endpoint enabled it would only idle, so the lone endpoint gets every worker.
	const workers = 8
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 64)}
	s, err := webhook.NewSender(webhook.WithWorkers(workers), webhook.WithStore(store), loopback,
		webhook.WithTimeout(time.Minute), webhook.WithLeaseDuration(2*time.Minute), // no attempt ends on its own
		webhook.WithEndpoints(
			webhook.Endpoint{ID: "busy", URL: hang.URL, Secret: secret},
			webhook.Endpoint{ID: "off", URL: hang.URL, Secret: secret, Disabled: true},
		))
	require.NoError(t, err)
	closeSoon := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		return s.Close(ctx) // aborts the hanging attempts
	}
	t.Cleanup(func() { _ = closeSoon() }) // also when the test fails early
	ctx := testCtx(t)
	for range 3 * workers {
		_, err := s.Send(ctx, webhook.Event{Type: "busy.x"})
		require.NoError(t, err)
	}
	receiveN(t, ctx, hang.started, workers, "the lone endpoint did not get every worker")
	receiveN(t, ctx, store.claimed, 2*workers, "the lone endpoint did not fill the claim-ahead buffer")
	inFlight, err := store.List(ctx, webhook.ListParams{EndpointID: "busy", State: webhook.StateInFlight, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, inFlight.Deliveries, 2*workers, "claimed: every worker and the whole buffer")

	assert.ErrorIs(t, closeSoon(), context.DeadlineExceeded)
}
