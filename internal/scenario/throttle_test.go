package scenario_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/hooksmith/webhook"
)

// tokenBucket admits rate requests a second, up to burst at once.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// A receiver that admits 20 requests a second and answers the rest 429 with
// Retry-After: 1 is only saying "slow down": with the default breaker and schedule,
// every event is delivered at about the receiver's rate, and the circuit never opens.
func TestRateLimitedReceiver(t *testing.T) {
	t.Parallel()
	const events, rate = 160, 20
	rcv := newReceiver(t)
	bucket := newTokenBucket(rate, rate)
	rcv.answer(func(c call) answer {
		if bucket.take(c.At) {
			return answer{}
		}
		return answer{Status: http.StatusTooManyRequests, RetryAfter: "1"}
	})
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks())
	ideal := time.Duration(events/rate) * time.Second
	ctx := within(t, 2*ideal+5*time.Second)
	start := time.Now()
	newSent().sendN(ctx, t, s, "evt", "order.created", events)
	rcv.waitDelivered(ctx, events)
	took := time.Since(start)
	t.Logf("%d events through a %d/s receiver in %.1fs (ideal %s); %d requests", events, rate, took.Seconds(), ideal, rcv.requestCount())
	assert.Less(t, took, 2*ideal)
	assert.Empty(t, obs.circuitEvents(), "a 429 is not a failure of the endpoint")
}

// A receiver that answers each event's first attempt 429 Retry-After: 1. The retry of
// an event so paused goes out about when the receiver asked, not behind every first
// attempt still waiting.
func TestRetryAfterIsHonouredPromptly(t *testing.T) {
	t.Parallel()
	const events = 96
	const retryAfter = time.Second
	rcv := newReceiver(t)
	rcv.answer(func(c call) answer {
		if c.N == 1 {
			return answer{Status: http.StatusTooManyRequests, RetryAfter: "1"}
		}
		return answer{}
	})
	obs := newObserver()
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")), obs.hooks(), webhook.WithCircuitBreaker(-1, 0, 0))
	ctx := within(t, 40*time.Second)
	start := time.Now()
	ids := newSent().sendN(ctx, t, s, "evt", "order.created", events)
	rcv.waitDelivered(ctx, events)
	var gaps []time.Duration
	for _, id := range ids {
		as := rcv.arrivalsOf(id)
		for i := 1; i < len(as); i++ {
			if as[i].Status < 300 && as[i-1].Status == http.StatusTooManyRequests {
				gaps = append(gaps, as[i].At.Sub(as[i-1].At))
			}
		}
	}
	sortDurations(gaps)
	t.Logf("%d events in %.1fs; from a 429 to its accepted retry: median %s, max %s",
		events, time.Since(start).Seconds(), quantile(gaps, 0.5).Round(time.Millisecond), quantile(gaps, 1).Round(time.Millisecond))
	assert.Len(t, gaps, events)
	assert.LessOrEqual(t, quantile(gaps, 0.5), 2*retryAfter)
}

// A slow endpoint must not hold back a fast one: with one receiver taking two seconds
// per request beside one that answers at once, both subscribed to the same events, the
// fast one gets every event within a fraction of a second of its Send.
func TestSlowEndpointBesideAFastOne(t *testing.T) {
	t.Parallel()
	const events = 200
	slow, fast := newReceiver(t), newReceiver(t)
	slow.answer(func(call) answer { return answer{Delay: 2 * time.Second} })
	s := newSender(t, webhook.WithEndpoints(slow.endpoint("slow"), fast.endpoint("fast")))
	ctx := within(t, 30*time.Second)
	sn := newSent()
	ids := sn.sendN(ctx, t, s, "evt", "order.created", events)
	fast.waitDelivered(ctx, events)
	lat := latencies(sn, fast, ids)
	t.Logf("fast endpoint: Send to arrival p50 %s, p99 %s, max %s (the slow one has %d so far)",
		quantile(lat, 0.5).Round(time.Millisecond), quantile(lat, 0.99).Round(time.Millisecond),
		quantile(lat, 1).Round(time.Millisecond), slow.deliveredCount())
	assert.Less(t, quantile(lat, 1), time.Second)
}

// A fifth of first attempts fail with 500; with the default schedule every event is
// delivered once its first retry (5s, ±20%) comes round.
func TestAFifthOfFirstAttemptsFail(t *testing.T) {
	t.Parallel()
	const events = 200
	rcv := newReceiver(t)
	rcv.answer(func(c call) answer {
		var n int
		_, _ = fmt.Sscanf(c.EventID, "evt-%d", &n)
		if c.N == 1 && n%5 == 0 {
			return answer{Status: http.StatusInternalServerError}
		}
		return answer{}
	})
	s := newSender(t, webhook.WithEndpoints(rcv.endpoint("ep")))
	bound := time.Duration(float64(webhook.DefaultInitialInterval)*(1+webhook.DefaultRandomization)) + 3*time.Second
	ctx := within(t, bound+10*time.Second)
	start := time.Now()
	newSent().sendN(ctx, t, s, "evt", "order.created", events)
	rcv.waitDelivered(ctx, events)
	took := time.Since(start)
	t.Logf("%d events, a fifth failing once, delivered in %.1fs", events, took.Seconds())
	assert.Less(t, took, bound)
}
