package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestCircuitBreakerOpensHoldsAndCloses(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(500), webhooktest.Status(500), webhooktest.Status(500),
		webhooktest.Status(200))
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	changes := make(chan webhook.EndpointHealth, 10)
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), webhook.WithWorkers(1),
		webhook.WithHooks(webhook.Hooks{
			OnAttempt:       func(a webhook.AttemptReport) { rep.ch <- a },
			OnCircuitChange: func(id string, h webhook.EndpointHealth) { changes <- h },
		}),
		webhook.WithCircuitBreaker(2, time.Minute, 10*time.Minute),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Second}, MaxAttempts: 20}))
	ctx := testCtx(t)
	_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	rep.next(t)
	clk.Advance(time.Second)
	rep.next(t) // second failure opens the circuit
	h := <-changes
	assert.Equal(t, webhook.CircuitOpen, h.Circuit)
	assert.Equal(t, clk.Now().Add(time.Minute), h.OpenUntil)
	got, err := s.EndpointHealth("ep")
	require.NoError(t, err)
	assert.Equal(t, webhook.CircuitOpen, got.Circuit)
	assert.Equal(t, 2, got.ConsecutiveFailures)

	// The delivery is due after 1s, but the open circuit holds it without burning attempts.
	clk.Advance(30 * time.Second)
	select {
	case a := <-rep.ch:
		t.Fatalf("attempt while the circuit is open: %+v", a.Attempt)
	default:
	}
	clk.Advance(30 * time.Second) // cool-down over: one probe, which fails
	a := rep.next(t)
	assert.Equal(t, 3, a.Delivery.Attempts)
	h = <-changes
	assert.Equal(t, webhook.CircuitOpen, h.Circuit, "the failed probe reopens it")
	assert.Equal(t, clk.Now().Add(2*time.Minute), h.OpenUntil, "with a doubled cool-down")

	clk.Advance(2 * time.Minute) // the next probe succeeds and closes it
	a = rep.next(t)
	assert.Equal(t, webhook.StateSucceeded, a.Delivery.State)
	h = <-changes
	assert.Equal(t, webhook.CircuitClosed, h.Circuit)
	assert.Equal(t, 4, tr.Len())
}

func TestRetryAfterPausesOnlyThatEndpoint(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://slow.test/", webhooktest.Status(429).WithHeader("Retry-After", "60"), webhooktest.Status(200))
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	sec := webhook.NewSecret()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), rep.hooks(), webhook.WithWorkers(1),
		webhook.WithEndpoints(
			webhook.Endpoint{ID: "slow", URL: "https://slow.test/", Secret: sec, EventTypes: []string{"slow.x"}},
			webhook.Endpoint{ID: "fast", URL: "https://fast.test/", Secret: sec, EventTypes: []string{"fast.x"}}))
	ctx := testCtx(t)
	_, err := s.Send(ctx, webhook.Event{Type: "slow.x"})
	require.NoError(t, err)
	a := rep.next(t)
	require.Equal(t, 429, a.Attempt.StatusCode)
	h, err := s.EndpointHealth("slow")
	require.NoError(t, err)
	assert.Equal(t, clk.Now().Add(time.Minute), h.PausedUntil)

	// Another event for the paused endpoint waits; the other endpoint is served at once.
	_, err = s.Send(ctx, webhook.Event{Type: "slow.x"})
	require.NoError(t, err)
	_, err = s.Send(ctx, webhook.Event{Type: "fast.x"})
	require.NoError(t, err)
	a = rep.next(t)
	assert.Equal(t, "fast", a.Delivery.EndpointID)
	select {
	case a := <-rep.ch:
		t.Fatalf("paused endpoint attempted: %s", a.Delivery.EndpointID)
	default:
	}
	clk.Advance(time.Minute)
	for _, r := range rep.waitFinal(t, 2) {
		assert.Equal(t, "slow", r.Delivery.EndpointID)
		assert.Equal(t, webhook.StateSucceeded, r.Delivery.State)
	}
}

func TestRateLimitSpacesAttempts(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), rep.hooks(),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: "https://r.test/", Secret: webhook.NewSecret(),
			RateLimit: 1, RateBurst: 2}))
	ctx := testCtx(t)
	for range 5 {
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		require.NoError(t, err)
	}
	rep.waitFinal(t, 2) // the burst
	select {
	case a := <-rep.ch:
		t.Fatalf("attempt beyond the burst before a token: %+v", a.Delivery.ID)
	default:
	}
	for i := range 3 {
		clk.Advance(time.Second)
		rep.waitFinal(t, 1)
		assert.Equal(t, 3+i, tr.Len())
	}
}

func TestAutoDisableAfterContinuousFailure(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(500))
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	disabled := make(chan string, 1)
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), webhook.WithCircuitBreaker(-1, 0, 0),
		webhook.WithAutoDisable(time.Hour),
		webhook.WithHooks(webhook.Hooks{
			OnAttempt:          func(a webhook.AttemptReport) { rep.ch <- a },
			OnEndpointDisabled: func(id, reason string) { disabled <- reason },
		}),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{40 * time.Minute}, MaxAttempts: 10}))
	ctx := testCtx(t)
	ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	rep.next(t)
	clk.Advance(40 * time.Minute)
	rep.next(t)
	clk.Advance(40 * time.Minute) // 80 minutes of nothing but failures
	rep.next(t)
	assert.Contains(t, <-disabled, "every attempt has failed")
	ep, err := s.Endpoint("ep")
	require.NoError(t, err)
	assert.True(t, ep.Disabled)
	d, err := s.Delivery(ctx, ids[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StatePending, d.State, "its pending delivery is kept")
}

// hangCounter is a transport that counts the requests to one host it has under way,
// from RoundTrip until the request fails or its response body is closed: what the
// Sender holds, which a count kept by the server would overstate while it has yet to
// notice a connection the client gave up on.
type hangCounter struct {
	base http.RoundTripper
	host string

	mu            sync.Mutex
	inFlight, max int
}

func (c *hangCounter) add(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight += n
	c.max = max(c.max, c.inFlight)
}

// resetMax starts a new maximum from the requests under way now.
func (c *hangCounter) resetMax() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = c.inFlight
}

func (c *hangCounter) maxInFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

func (c *hangCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != c.host {
		return c.base.RoundTrip(r)
	}
	c.add(1)
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		c.add(-1)
		return nil, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, done: func() { c.add(-1) }}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *countedBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}

func TestFailingEndpointsShareIsCapped(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	tr := &hangCounter{base: http.DefaultTransport.(*http.Transport).Clone(), host: hang.Listener.Addr().String()}
	t.Cleanup(tr.base.(*http.Transport).CloseIdleConnections)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	eps := []webhook.Endpoint{{ID: "healthy", URL: recv.URL, Secret: secret, EventTypes: []string{"ok.x"}}}
	for i := range 10 {
		eps = append(eps, webhook.Endpoint{ID: fmt.Sprintf("hang%d", i), URL: hang.URL, Secret: secret, EventTypes: []string{"hang.x"}})
	}
	rep := newReports()
	s := newSender(t, webhook.WithWorkers(8), rep.hooks(), webhook.WithEndpoints(eps...), webhook.WithTransport(tr),
		// The healthy endpoint's requests must finish within it under -race on a loaded
		// machine, or they wait an hour for their retry (100 ms was too short once).
		webhook.WithTimeout(time.Second), webhook.WithLeaseDuration(10*time.Second),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Hour}}))
	ctx := testCtx(t)
	// Every hanging endpoint fails once (times out) and so counts as failing.
	_, err := s.Send(ctx, webhook.Event{Type: "hang.x"})
	require.NoError(t, err)
	for range 10 {
		require.Equal(t, webhook.Retry, rep.next(t).Verdict)
	}
	tr.resetMax()
	for range 5 {
		_, err := s.Send(ctx, webhook.Event{Type: "hang.x"})
		require.NoError(t, err)
	}
	for range 40 {
		_, err := s.Send(ctx, webhook.Event{Type: "ok.x"})
		require.NoError(t, err)
	}
	require.NoError(t, recv.WaitVerified(ctx, 40))
	maxInFlight := tr.maxInFlight()
	assert.LessOrEqual(t, maxInFlight, 2, "failing endpoints hold at most their share (a quarter) of the workers")
	assert.Positive(t, maxInFlight, "the failing endpoints were still attempted")
}
