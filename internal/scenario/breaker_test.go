package scenario_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// An outage with every default: the receiver refuses connections for a few seconds,
// the circuit opens after DefaultBreakerThreshold failures, and the first probe once
// DefaultBreakerCooldown has passed finds it back and closes the circuit. Every event is
// then delivered at once: within the cool-down and a few seconds.
func TestOutageWithDefaults(t *testing.T) {
	t.Parallel()
	const events, outage = 500, 3 * time.Second
	rcv := newReceiver(t)
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks())
	rcv.down()
	start := time.Now()
	ctx := within(t, webhook.DefaultBreakerCooldown+outage+20*time.Second)
	sn := newSent()
	sn.sendN(ctx, t, s, "evt", "order.created", events)

	obs.waitFor(ctx, t, "the circuit opening", func() bool { return len(obs.circuit) > 0 })
	open := obs.circuitEvents()[0]
	require.Equal(t, webhook.CircuitOpen, open.Health.Circuit)
	assert.WithinDuration(t, open.At.Add(webhook.DefaultBreakerCooldown), open.Health.OpenUntil, time.Second,
		"a newly opened circuit stays open for the first cool-down")
	time.Sleep(time.Until(start.Add(outage))) // the subject: a receiver down for a while
	h, err := s.EndpointHealth("ep")
	require.NoError(t, err)
	assert.Equal(t, open.Health.OpenUntil, h.OpenUntil, "failures of attempts begun before the circuit opened do not extend it")
	rcv.up()

	rcv.waitDelivered(ctx, events)
	took := time.Since(start)
	t.Logf("%d events delivered %.1fs after the outage began (cool-down %s)", events, took.Seconds(), webhook.DefaultBreakerCooldown)
	assert.Less(t, took, webhook.DefaultBreakerCooldown+5*time.Second)
	var opens int
	for _, e := range obs.circuitEvents() {
		if e.Health.Circuit == webhook.CircuitOpen {
			opens++
		}
	}
	assert.Equal(t, 1, opens, "one opening, one successful probe")
	h, err = s.EndpointHealth("ep")
	require.NoError(t, err)
	assert.Equal(t, webhook.CircuitClosed, h.Circuit)
}

// Attempts in flight when the circuit opens fail too; their failures say nothing the
// opening did not already know, and must not reopen it for longer.
func TestBreakerStragglersDoNotExtendTheCoolDown(t *testing.T) {
	t.Parallel()
	const workers, cool = 16, 2 * time.Second
	rcv := newReceiver(t)
	rcv.answer(func(c call) answer {
		return answer{Status: http.StatusServiceUnavailable, Delay: 100 * time.Millisecond}
	})
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks(), webhook.WithWorkers(workers),
		webhook.WithCircuitBreaker(5, cool, 30*time.Minute))
	ctx := within(t, 20*time.Second)
	newSent().sendN(ctx, t, s, "evt", "order.created", workers)

	// All of them are in flight together; every one of them fails.
	obs.waitFor(ctx, t, "every attempt recorded", func() bool { return len(obs.attempts) == workers })
	opens := obs.opened()
	require.Len(t, opens, 1, "one opening for one run of failures")
	h, err := s.EndpointHealth("ep")
	require.NoError(t, err)
	assert.Equal(t, opens[0].Health.OpenUntil, h.OpenUntil)
	assert.LessOrEqual(t, h.OpenUntil.Sub(opens[0].At), cool, "open for the first cool-down, not a doubled one")
}

// A delivery claimed ahead of its attempt while the circuit was closed must not be
// attempted once it has opened: it waits in the store, without using an attempt, until
// the probe.
func TestNoAttemptStartsWhileTheCircuitIsOpen(t *testing.T) {
	t.Parallel()
	const cool = 2 * time.Second
	rcv := newReceiver(t)
	rcv.answer(func(c call) answer {
		if c.EventID == "evt-0" && c.N == 1 {
			return answer{Status: http.StatusServiceUnavailable}
		}
		// The others in flight when the circuit opens answer later: stragglers.
		return answer{Status: http.StatusServiceUnavailable, Delay: 200 * time.Millisecond}
	})
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks(), webhook.WithWorkers(4),
		webhook.WithCircuitBreaker(1, cool, time.Minute))
	ctx := within(t, 20*time.Second)
	newSent().sendN(ctx, t, s, "evt", "order.created", 40)

	obs.waitFor(ctx, t, "the circuit opening", func() bool { return len(obs.circuit) > 0 })
	open := obs.opened()[0]
	// Wait out the cool-down and the probe that follows it.
	obs.waitFor(ctx, t, "the probe", func() bool {
		for _, a := range obs.attempts {
			if !a.Attempt.StartedAt.Before(open.Health.OpenUntil) {
				return true
			}
		}
		return false
	})
	var during, after int
	for _, a := range obs.attemptReports() {
		switch st := a.Attempt.StartedAt; {
		case st.After(open.At) && st.Before(open.Health.OpenUntil):
			during++
		case !st.Before(open.Health.OpenUntil):
			after++
		}
	}
	t.Logf("attempts started while open: %d; after the cool-down: %d", during, after)
	assert.Zero(t, during, "no attempt starts while the circuit is open")
	assert.GreaterOrEqual(t, after, 1)
}

// A user's "it works again" closes the circuit: a manual retry, enabling the endpoint,
// pointing it at a new URL, removing and adding it again, or the explicit reset. Each
// delivers at once, not after the cool-down.
func TestTheUserClosesTheCircuit(t *testing.T) {
	t.Parallel()
	const events = 20
	cases := []struct {
		name string
		fix  func(t *testing.T, ctx context.Context, s *webhook.Sender, rcv, other *receiver, ids []string)
	}{
		{"Retry", func(t *testing.T, ctx context.Context, s *webhook.Sender, rcv, _ *receiver, _ []string) {
			failed := failedIDs(ctx, t, s, "ep")
			n, err := s.Retry(ctx, failed...)
			require.NoError(t, err)
			require.Equal(t, len(failed), n)
		}},
		{"RetryFailed", func(t *testing.T, ctx context.Context, s *webhook.Sender, _, _ *receiver, _ []string) {
			_, err := s.RetryFailed(ctx, "ep", time.Time{})
			require.NoError(t, err)
		}},
		{"EnableEndpoint", func(t *testing.T, ctx context.Context, s *webhook.Sender, _, _ *receiver, _ []string) {
			require.NoError(t, s.DisableEndpoint("ep"))
			require.NoError(t, s.EnableEndpoint("ep"))
			_, err := s.RetryFailed(ctx, "ep", time.Time{})
			require.NoError(t, err)
		}},
		{"UpdateEndpointURL", func(t *testing.T, ctx context.Context, s *webhook.Sender, rcv, other *receiver, _ []string) {
			ep := rcv.endpoint("ep")
			ep.URL = other.url()
			require.NoError(t, s.UpdateEndpoint(ep))
			_, err := s.RetryFailed(ctx, "ep", time.Time{})
			require.NoError(t, err)
		}},
		{"RemoveAndAdd", func(t *testing.T, ctx context.Context, s *webhook.Sender, rcv, _ *receiver, _ []string) {
			require.NoError(t, s.RemoveEndpoint("ep"))
			require.NoError(t, s.AddEndpoint(rcv.endpoint("ep")))
			_, err := s.RetryFailed(ctx, "ep", time.Time{})
			require.NoError(t, err)
		}},
		{"ResetEndpointHealth", func(t *testing.T, ctx context.Context, s *webhook.Sender, _, _ *receiver, _ []string) {
			require.NoError(t, s.ResetEndpointHealth("ep"))
			_, err := s.RetryFailed(ctx, "ep", time.Time{})
			require.NoError(t, err)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t)
			other := newReceiver(t, rcv.secret)
			broken := true
			rcv.answer(func(call) answer {
				if broken {
					return answer{Status: http.StatusInternalServerError}
				}
				return answer{}
			})
			obs := newObserver()
			// One attempt each, so failures are dead letters at once; the default breaker.
			s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks(),
				webhook.WithRetryPolicy(webhook.RetryPolicy{MaxAttempts: 1}))
			ctx := within(t, 20*time.Second)
			ids := newSent().sendN(ctx, t, s, "evt", "order.created", events)
			obs.waitFor(ctx, t, "the circuit opening", func() bool { return len(obs.circuit) > 0 })
			eventually(ctx, t, "the attempts in flight ending", func() bool { return inFlight(ctx, t, s) == 0 })
			rcv.mu.Lock()
			broken = false
			rcv.mu.Unlock()

			fixed := time.Now()
			tc.fix(t, ctx, s, rcv, other, ids)
			h, err := s.EndpointHealth("ep")
			require.NoError(t, err)
			assert.Equal(t, webhook.CircuitClosed, h.Circuit)
			assert.Zero(t, h.ConsecutiveFailures)
			obs.waitDelivered(within(t, 3*time.Second), t, ids)
			t.Logf("%d deliveries succeeded %.2fs after the fix (cool-down %s)", events, time.Since(fixed).Seconds(), webhook.DefaultBreakerCooldown)
		})
	}
}
