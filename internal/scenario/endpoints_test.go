package scenario_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// A receiver answers 410 Gone, so the endpoint is disabled; its owner fixes it,
// enables it and retries the dead letters. Attempts that began before the enable and
// are answered 410 after it must not disable the endpoint again, and 410s never open
// the circuit: everything is delivered at once.
func TestGoneThenReenabled(t *testing.T) {
	t.Parallel()
	const events = 50
	rcv := newReceiver(t)
	gone := true
	rcv.answer(func(c call) answer {
		switch {
		case !gone:
			return answer{}
		case c.EventID == "evt-0":
			return answer{Status: http.StatusGone}
		}
		// In flight when the endpoint is disabled, answered after it is enabled again.
		return answer{Status: http.StatusGone, Delay: 300 * time.Millisecond}
	})
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks())
	ctx := within(t, 20*time.Second)
	ids := newSent().sendN(ctx, t, s, "evt", "order.created", events)
	obs.waitFor(ctx, t, "the endpoint disabled", func() bool { return len(obs.disabled) > 0 })

	rcv.mu.Lock()
	gone = false
	rcv.mu.Unlock()
	fixed := time.Now()
	require.NoError(t, s.EnableEndpoint("ep"))
	_, err := s.RetryFailed(ctx, "ep", time.Time{})
	require.NoError(t, err)
	eventually(ctx, t, "the stragglers' attempts ending", func() bool { return inFlight(ctx, t, s) == 0 })
	ep, err := s.Endpoint("ep")
	require.NoError(t, err)
	assert.False(t, ep.Disabled, "a 410 to an attempt begun before EnableEndpoint does not disable it again")

	// The stragglers' own deliveries failed with that 410; retry them too.
	_, err = s.RetryFailed(ctx, "ep", time.Time{})
	require.NoError(t, err)
	obs.waitDelivered(within(t, 5*time.Second), t, ids)
	t.Logf("%d events delivered %.2fs after the endpoint was fixed", events, time.Since(fixed).Seconds())
	assert.Empty(t, obs.circuitEvents(), "410 is not a breaker failure")
	assert.Len(t, obs.disabled, 1)
}

// Endpoints added, updated, disabled, enabled and removed while four goroutines send:
// nothing races, nothing is lost, and every delivery ends: succeeded, or failed because
// its endpoint was removed.
func TestEndpointChurnWhileSending(t *testing.T) {
	t.Parallel()
	const senders = 4
	a := newReceiver(t)
	b := newReceiver(t, a.secret) // the stable endpoint's URL moves between a and b
	c := newReceiver(t, a.secret)
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(a.endpoint("stable"), c.endpoint("toggled")), obs.hooks())
	ctx := within(t, 60*time.Second)

	// Each sender sends a fixed number of events; the churn goes on until they are done
	// and it has made at least minRounds rounds of changes.
	const perSender, minRounds = 250, 50
	sendersDone := make(chan struct{})
	churned := make(chan struct{})
	rounds := 0
	go func() {
		defer close(churned)
		for i := 0; ; i++ {
			if i >= minRounds {
				select {
				case <-sendersDone:
					rounds = i
					return
				default:
				}
			}
			ep := a.endpoint("stable")
			if i%2 == 1 {
				ep.URL = b.url()
			}
			ep.Headers = map[string]string{"X-Round": fmt.Sprint(i)}
			assert.NoError(t, s.UpdateEndpoint(ep))
			if i%3 == 0 {
				assert.NoError(t, s.DisableEndpoint("toggled"))
			} else {
				assert.NoError(t, s.EnableEndpoint("toggled"))
			}
			assert.NoError(t, s.AddEndpoint(c.endpoint(fmt.Sprintf("transient-%d", i))))
			if i > 0 {
				assert.NoError(t, s.RemoveEndpoint(fmt.Sprintf("transient-%d", i-1)))
			}
		}
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted []string
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				ids, err := s.Send(ctx, webhook.Event{ID: fmt.Sprintf("evt-%d-%d", g, i), Type: "order.created"})
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				accepted = append(accepted, ids...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(sendersDone)
	<-churned
	const sends = senders * perSender
	require.NoError(t, s.EnableEndpoint("toggled"))

	obs.waitFor(ctx, t, "every delivery finished", func() bool {
		final := 0
		for _, r := range obs.attempts {
			if r.Final {
				final++
			}
		}
		return final >= len(accepted)
	})
	var succeeded, removed int
	for _, id := range accepted {
		d, err := s.Delivery(ctx, id)
		require.NoError(t, err)
		switch {
		case d.State == webhook.StateSucceeded:
			succeeded++
		case d.State == webhook.StateFailed && strings.HasPrefix(d.EndpointID, "transient-") && strings.Contains(d.LastError, "removed"):
			removed++
		default:
			t.Errorf("delivery %s to %s ended %s: %s", d.ID, d.EndpointID, d.State, d.LastError)
		}
	}
	t.Logf("%d rounds of endpoint changes during %d sends: %d deliveries succeeded, %d failed for a removed endpoint",
		rounds, sends, succeeded, removed)
	assert.Zero(t, a.badRequests()+b.badRequests()+c.badRequests())
	assert.GreaterOrEqual(t, a.deliveredCount()+b.deliveredCount(), sends, "every event reached the stable endpoint")
}
