package webhook_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestGoneDisablesEndpointAndKeepsItsPendingDeliveries(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://gone.test/", webhooktest.Status(410))
	disabled := make(chan string, 1)
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithWorkers(1), webhook.WithEndpoints(
		endpoint("gone", "https://gone.test/", webhook.NewSecret())),
		webhook.WithHooks(webhook.Hooks{
			OnAttempt:          func(a webhook.AttemptReport) { rep.ch <- a },
			OnEndpointDisabled: func(id, reason string) { disabled <- id },
		}))
	ctx := testCtx(t)
	_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, webhook.Gone, a.Verdict)
	assert.Equal(t, "gone", <-disabled)
	ep, err := s.Endpoint("gone")
	require.NoError(t, err)
	assert.True(t, ep.Disabled)

	// New events skip the disabled endpoint; explicit ones are refused.
	ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	assert.Empty(t, ids)

	// Deliveries queued for it while disabled (requeued dead letter) wait, then go out
	// once it is enabled again.
	_, err = s.Retry(ctx, a.Delivery.ID)
	require.NoError(t, err)
	tr.Script("https://gone.test/", webhooktest.Status(200))
	require.NoError(t, s.EnableEndpoint("gone"))
	final := rep.waitFinal(t, 1)[0]
	assert.Equal(t, webhook.StateSucceeded, final.Delivery.State)
}

func TestEndpointChangesApplyToQueuedDeliveries(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := webhook.NewSecret(), webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, newSecret) // knows only the new secret
	tr := webhooktest.NewTransport()
	clk := webhooktest.NewClock(time.Now())
	recv.Verifier().Now = clk.Now
	rep := newReports()
	s := newSender(t, webhook.WithClock(clk), rep.hooks(),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: "https://old.test/", Secret: oldSecret}),
		webhook.WithTransport(routeTransport{tr, recv.URL}),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Minute}}))
	tr.Script("https://old.test/", webhooktest.Status(503))
	ctx := testCtx(t)
	ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	require.Equal(t, webhook.StatePending, a.Delivery.State)

	// Move the endpoint and rotate its secret, keeping the old one active.
	require.NoError(t, s.UpdateEndpoint(webhook.Endpoint{ID: "ep", URL: "http://new.test/", Secret: newSecret, PreviousSecrets: []string{oldSecret}}))
	clk.Advance(time.Minute)
	a = rep.next(t)
	assert.Equal(t, webhook.StateSucceeded, a.Delivery.State)
	got := recv.Verified()
	require.Len(t, got, 1)
	assert.Equal(t, ids[0], a.Delivery.ID)
	sigs := strings.Fields(got[0].Header.Get("webhook-signature"))
	assert.Len(t, sigs, 2, "one signature per active secret")
	old, err := webhook.NewVerifier(oldSecret)
	require.NoError(t, err)
	old.Now = clk.Now
	assert.NoError(t, old.Verify(got[0].Header, got[0].Body), "receivers still on the old secret verify too")
}

// routeTransport sends requests for new.test to a real receiver and the rest to a fake.
type routeTransport struct {
	fake *webhooktest.Transport
	real string
}

func (rt routeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != "new.test" {
		return rt.fake.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	u := *r.URL
	u.Scheme, u.Host = "http", strings.TrimPrefix(rt.real, "http://")
	r2.URL, r2.Host = &u, ""
	return http.DefaultTransport.RoundTrip(r2)
}

func TestEndpointRegistryConcurrentChanges(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	s := newSender(t, webhook.WithTransport(tr))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("ep_%d_%d", g, i)
				ep := endpoint(id, "https://r.test/"+id, webhook.NewSecret())
				assert.NoError(t, s.AddEndpoint(ep))
				ep.EventTypes = []string{"a.*"}
				assert.NoError(t, s.UpdateEndpoint(ep))
				assert.NoError(t, s.DisableEndpoint(id))
				assert.NoError(t, s.EnableEndpoint(id))
				ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
				assert.NoError(t, err)
				sent.Add(int64(len(ids)))
				if i%2 == 0 {
					assert.NoError(t, s.RemoveEndpoint(id))
				}
			}
		}()
	}
	wg.Wait()
	assert.Len(t, s.Endpoints(), 100)
	assert.ErrorIs(t, s.AddEndpoint(s.Endpoints()[0]), webhook.ErrEndpointExists)
	assert.ErrorIs(t, s.UpdateEndpoint(endpoint("nope", "https://x.test/", webhook.NewSecret())), webhook.ErrEndpointNotFound)
	assert.ErrorIs(t, s.RemoveEndpoint("nope"), webhook.ErrEndpointNotFound)
	assert.Positive(t, sent.Load())
}

func TestRemovedEndpointDeadLettersItsDeliveries(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(503))
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Minute}}))
	ids, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	rep.next(t)
	require.NoError(t, s.RemoveEndpoint("ep"))
	// The next due attempt finds no endpoint: the delivery is dead-lettered with a reason,
	// not dropped.
	require.NoError(t, clk.WaitForTimers(testCtx(t), 1))
	clk.Advance(time.Minute)
	a := rep.next(t)
	assert.True(t, a.Final)
	assert.Zero(t, a.Attempt, "no request was made")
	d, err := s.Delivery(testCtx(t), ids[0])
	require.NoError(t, err)
	assert.Contains(t, d.LastError, "removed")
	assert.Equal(t, 1, tr.Len())
}

func TestFanOutFollowsEndpointChanges(t *testing.T) {
	t.Parallel()
	store := webhook.NewMemoryStore(0)
	s := newSender(t, webhook.WithStore(store), webhook.WithTransport(webhooktest.NewTransport()),
		webhook.WithEndpoints(webhook.Endpoint{ID: "a", URL: "https://a.example/hook", Secret: webhook.NewSecret(), EventTypes: []string{"order.*"}}))
	ctx := testCtx(t)
	endpointsOf := func(typ string) []string {
		t.Helper()
		ids, err := s.Send(ctx, webhook.Event{Type: typ})
		require.NoError(t, err)
		var out []string
		for _, id := range ids {
			d, err := store.Get(ctx, id)
			require.NoError(t, err)
			out = append(out, d.EndpointID)
		}
		return out
	}
	assert.Equal(t, []string{"a"}, endpointsOf("order.created"))
	assert.Equal(t, []string{"a"}, endpointsOf("order.created"), "the same again, from the route cache")
	assert.Empty(t, endpointsOf("user.created"))

	require.NoError(t, s.AddEndpoint(webhook.Endpoint{ID: "b", URL: "https://b.example/hook", Secret: webhook.NewSecret(), EventTypes: []string{"order.created"}}))
	assert.Equal(t, []string{"a", "b"}, endpointsOf("order.created"), "a new endpoint gets the next event")
	require.NoError(t, s.DisableEndpoint("a"))
	assert.Equal(t, []string{"b"}, endpointsOf("order.created"), "a disabled endpoint gets none")
	require.NoError(t, s.UpdateEndpoint(webhook.Endpoint{ID: "b", URL: "https://b.example/hook", Secret: webhook.NewSecret(), EventTypes: []string{"user.*"}}))
	assert.Empty(t, endpointsOf("order.created"), "a changed filter applies at once")
	assert.Equal(t, []string{"b"}, endpointsOf("user.created"))
}
