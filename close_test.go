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

func TestCloseLeavesUndeliveredInStoreAndAbortsInFlight(t *testing.T) {
	t.Parallel()
	srv := newHangingServer(t, -1)
	store := webhook.NewMemoryStore(0)
	clk := webhooktest.NewClock(time.Now())
	s, err := webhook.NewSender(webhook.WithStore(store), webhook.WithClock(clk), webhook.WithWorkers(1), loopback,
		webhook.WithEndpoints(endpoint("ep", srv.URL, webhook.NewSecret())))
	require.NoError(t, err)
	ctx := testCtx(t)
	first, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	second, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	<-srv.started

	closeCtx, cancel := context.WithCancel(ctx)
	cancel() // no grace: abort the hanging attempt at once
	assert.ErrorIs(t, s.Close(closeCtx), context.Canceled)

	_, err = s.Send(ctx, webhook.Event{Type: "a.b"})
	assert.ErrorIs(t, err, webhook.ErrClosed)
	assert.NoError(t, s.Close(ctx), "Close is idempotent")

	for _, id := range append(first, second...) {
		d, err := store.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, webhook.StatePending, d.State, "undelivered stays pending")
		assert.False(t, d.NextAttemptAt.After(clk.Now()), "due at once for the next Sender")
	}

	// A new Sender on the same store delivers both.
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	rep := newReports()
	s2 := newSender(t, webhook.WithStore(store), rep.hooks(), webhook.WithEndpoints(endpoint("ep", recv.URL, secret)))
	rep.waitFinal(t, 2)
	assert.Equal(t, 2, recv.UniqueIDs())
	_ = s2
}

func TestDeliveriesClaimedAheadAreHandedBackUnattemptedOnClose(t *testing.T) {
	t.Parallel()
	srv := newHangingServer(t, 1)
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 16)}
	s, err := webhook.NewSender(webhook.WithStore(store), webhook.WithWorkers(1), loopback,
		webhook.WithEndpoints(endpoint("ep", srv.URL, webhook.NewSecret())))
	require.NoError(t, err)
	ctx := testCtx(t)
	first, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	second, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	<-srv.started                   // the one worker is busy with the first
	store.waitClaimed(t, second[0]) // and the second waits, claimed ahead for it
	closeCtx, cancel := context.WithCancel(ctx)
	cancel() // abort the hanging attempt; the worker then finds the second
	assert.ErrorIs(t, s.Close(closeCtx), context.Canceled)

	assert.Equal(t, int32(1), srv.requests.Load(), "only the first was attempted")
	d, err := store.Get(ctx, first[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StatePending, d.State)
	assert.Equal(t, 1, d.Attempts, "the aborted attempt is recorded")
	d, err = store.Get(ctx, second[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StatePending, d.State, "handed back, not left leased")
	assert.Zero(t, d.Attempts, "handed back without an attempt")
	assert.Empty(t, d.LeaseOwner)
}
