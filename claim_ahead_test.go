package webhook_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestDeliveryWhoseLeaseWouldLapseMidAttemptIsReclaimed(t *testing.T) {
	t.Parallel()
	srv := newHangingServer(t, 1)
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 16)}
	clk := webhooktest.NewClock(time.Now())
	core, logs := observer.New(zap.DebugLevel)
	rep := newReports()
	const timeout = 10 * time.Second
	s := newSender(t, webhook.WithStore(store), webhook.WithWorkers(1), webhook.WithClock(clk),
		webhook.WithTimeout(timeout), webhook.WithLeaseDuration(timeout+5*time.Second),
		webhook.WithLogger(zap.New(core)), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", srv.URL, webhook.NewSecret())))
	ctx := testCtx(t)
	_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	second, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	<-srv.started
	store.waitClaimed(t, second[0])
	// The second has waited 6s behind the first: 9s of lease left, less than the 10s an
	// attempt may take.
	clk.Advance(6 * time.Second)
	close(srv.release)

	rep.waitFinal(t, 2)
	store.waitClaimed(t, second[0]) // claimed again, with a fresh lease
	assert.Equal(t, int32(2), srv.requests.Load())
	handedBack := logs.FilterMessageSnippet("lease would lapse").All()
	require.Len(t, handedBack, 1)
	assert.Equal(t, second[0], handedBack[0].ContextMap()["delivery_id"])
	d, err := store.Get(ctx, second[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StateSucceeded, d.State)
	assert.Equal(t, 1, d.Attempts, "the hand-back is not an attempt")
}

func TestIdleWorkersTakeNewWorkWhileClaimedAheadAttemptsHang(t *testing.T) {
	t.Parallel()
	// The dispatcher holds off claiming while the claim-ahead buffer is full enough to
	// keep the workers busy. Deliveries it claimed in one batch and the workers then took
	// (all hanging) must not leave the idle workers waiting for an attempt to finish.
	const workers, hanging = 8, 6
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	store := webhook.NewMemoryStore(0)
	ctx := testCtx(t)
	now := time.Now()
	ds := make([]webhook.Delivery, hanging)
	for i := range ds {
		ds[i] = webhook.Delivery{ID: fmt.Sprintf("dlv_%02d", i), EventID: fmt.Sprintf("evt_%02d", i), EventType: "slow.x",
			EndpointID: "slow", Version: webhook.DefaultVersion, Body: []byte(`{}`), State: webhook.StatePending,
			CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}
	}
	require.NoError(t, store.Enqueue(ctx, ds)) // due before the Sender starts: one claim takes them all
	rep := newReports()
	// No attempt ends, and no poll comes, on its own before the test's deadline: only the
	// Sender's wake-ups can get the new delivery out.
	s := newSender(t, webhook.WithStore(store), webhook.WithWorkers(workers), webhook.WithEndpointConcurrency(workers),
		webhook.WithTimeout(time.Minute), webhook.WithLeaseDuration(2*time.Minute), webhook.WithPollInterval(time.Minute),
		rep.hooks(), webhook.WithEndpoints(
			webhook.Endpoint{ID: "slow", URL: hang.URL, Secret: secret, EventTypes: []string{"slow.*"}},
			webhook.Endpoint{ID: "fast", URL: recv.URL, Secret: secret, EventTypes: []string{"fast.*"}},
		))
	receiveN(t, ctx, hang.started, hanging, "the claimed deliveries were not all attempted")
	_, err := s.Send(ctx, webhook.Event{Type: "fast.x"})
	require.NoError(t, err)
	require.NoError(t, recv.WaitVerified(ctx, 1), "an idle worker delivers while the others hang")
	close(hang.release)
	rep.waitFinal(t, hanging+1)
}
