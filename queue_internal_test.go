package webhook

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the attempt context was never done")
	}
}

func isDone(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

func TestAttemptClockTimesOutAnAttemptAndGivesTheNextAFreshContext(t *testing.T) {
	c, release := newAttemptClock(context.Background())
	defer release()

	a := c.begin(time.Now().Add(5 * time.Millisecond))
	derived, cancelDerived := context.WithCancel(a) // as net/http derives one per request
	defer cancelDerived()
	waitDone(t, a)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	waitDone(t, derived)
	assert.ErrorIs(t, context.Cause(derived), context.DeadlineExceeded,
		"net/http reports the cause of its derived context's end")
	c.end()
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "a context, once done, stays as it was")

	b := c.begin(time.Now().Add(time.Hour))
	assert.False(t, isDone(b), "a timed-out attempt does not end the next one")
	assert.NoError(t, b.Err())
	dl, ok := b.Deadline()
	assert.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
	c.end()
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
}

func TestAttemptClockSharesOneContextUntilATimeoutOrItsLastUse(t *testing.T) {
	c, release := newAttemptClock(context.Background())
	defer release()

	first := c.begin(time.Now().Add(time.Hour))
	c.end()
	for range attemptsPerContext - 2 {
		c.begin(time.Now().Add(time.Hour))
		c.end()
	}
	last := c.begin(time.Now().Add(time.Hour))
	assert.Equal(t, first.Done(), last.Done(), "attempts that end in time share the worker's context")
	c.end()
	assert.False(t, isDone(first), "an attempt that ended in time does not end the context")

	renewed := c.begin(time.Now().Add(time.Hour))
	assert.NotEqual(t, first.Done(), renewed.Done(), "after attemptsPerContext attempts, a new context")
	assert.False(t, isDone(first), "the old context is dropped, not cancelled")
	assert.False(t, isDone(renewed))
	c.end()
}

func TestAttemptClockKeepsItsTimerArmedAcrossAttempts(t *testing.T) {
	c, release := newAttemptClock(context.Background())
	defer release()
	armedAt := func() time.Time {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.armedAt
	}

	first := time.Now().Add(time.Hour)
	c.begin(first)
	c.end()
	second := first.Add(time.Second)
	b := c.begin(second)
	assert.Equal(t, first, armedAt(), "a later deadline leaves the timer as it is")
	// The timer fires at the first attempt's deadline, in the second attempt: it re-arms
	// for the second's deadline, and ends nothing.
	c.expire()
	assert.False(t, isDone(b), "an attempt before its deadline is not expired")
	assert.Equal(t, second, armedAt())
	c.end()
	c.expire()
	assert.True(t, armedAt().IsZero(), "between attempts the timer is left unarmed")
	assert.False(t, isDone(b), "no attempt under way: nothing to expire")

	// An earlier deadline than the armed one re-arms the timer, and is kept.
	c.begin(time.Now().Add(time.Hour))
	c.end()
	early := c.begin(time.Now().Add(5 * time.Millisecond))
	waitDone(t, early)
	assert.ErrorIs(t, early.Err(), context.DeadlineExceeded)
	c.end()
}

func TestAttemptClockAbortsTheCurrentAndEveryLaterAttempt(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	c, release := newAttemptClock(base)
	defer release()

	a := c.begin(time.Now().Add(time.Hour))
	cancel()
	waitDone(t, a)
	assert.ErrorIs(t, a.Err(), context.Canceled)
	c.end()

	b := c.begin(time.Now().Add(time.Hour))
	assert.True(t, isDone(b), "once aborted, an attempt is done as it begins")
	assert.ErrorIs(t, b.Err(), context.Canceled)
	c.end()

	// So is one that gets a new context after a timeout.
	c.mu.Lock()
	c.uses = attemptsPerContext
	c.mu.Unlock()
	d := c.begin(time.Now().Add(time.Hour))
	assert.NotEqual(t, a.Done(), d.Done())
	assert.True(t, isDone(d))
	assert.ErrorIs(t, d.Err(), context.Canceled)
	c.end()
}

func TestDeliveryFIFOKeepsOrderAcrossReuse(t *testing.T) {
	var q deliveryFIFO
	next, want := 0, 0
	push := func(n int) {
		for range n {
			q.push(Delivery{ID: fmt.Sprint(next)})
			next++
		}
	}
	pop := func(n int) {
		for range n {
			require.Equal(t, fmt.Sprint(want), q.pop().ID)
			want++
		}
	}
	push(5)
	pop(3)
	push(20) // compacts the popped front away as it grows
	pop(10)
	push(7)
	pop(q.len())
	assert.Zero(t, q.len())
	assert.Equal(t, next, want)
	push(2) // an emptied queue is used again from its start
	assert.Zero(t, q.head)
	pop(2)
	for _, d := range q.items[:cap(q.items)] {
		assert.Nil(t, d.Body, "popped deliveries are not kept alive")
	}
}

// A claim that takes every pending delivery makes its result once, at the right size:
// growing it copies 288 bytes a delivery (this was off by one, and grew every claim of
// a store emptier than the claim's limit).
func TestMemoryClaimSizesItsResultOnce(t *testing.T) {
	m := NewMemoryStore(0)
	now := time.Unix(1_700_000_000, 0)
	for _, n := range []int{1, 3, 5} {
		ds := make([]Delivery, n)
		for i := range ds {
			ds[i] = pendingDelivery(fmt.Sprintf("dlv_%d_%d", n, i), now)
		}
		require.NoError(t, m.Enqueue(t.Context(), ds))
		got, err := m.Claim(t.Context(), ClaimParams{Now: now, Limit: 64, Owner: "o", LeaseUntil: now.Add(time.Hour)})
		require.NoError(t, err)
		require.Len(t, got, n)
		assert.Equal(t, n, cap(got), "capacity of a claim of %d with %d already leased", n, m.Len()-n)
	}
}

// What Send enqueues (enqueueFresh), and what a direct Enqueue stores, is held by value
// in intake until a claim absorbs it, so neither allocates per delivery: what a delivery
// shares with others (the interned endpoint, type and version) is found at the absorb.
// What they do allocate is shared by many deliveries and counted here as a fraction of
// a call, which testing.AllocsPerRun would round down to zero: a new intake block per 64
// deliveries, and for Enqueue the ID shards' reservation maps as they grow.
func TestMemoryEnqueueAllocatesNothingPerDelivery(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const warm, runs = 4096, 4096
	for _, fresh := range []bool{true, false} {
		m := NewMemoryStore(-1)
		enqueue := m.Enqueue
		if fresh {
			enqueue = m.enqueueFresh
		}
		ds := make([][]Delivery, warm+runs)
		for i := range ds {
			ds[i] = []Delivery{pendingDelivery(fmt.Sprintf("dlv_%06d", i), now)}
		}
		for _, d := range ds[:warm] { // the ID shards' maps and the intake's first blocks
			require.NoError(t, enqueue(context.Background(), d))
		}
		i := warm
		perCall := mallocsPerCall(runs, func() {
			if err := enqueue(context.Background(), ds[i]); err != nil {
				t.Fatal(err)
			}
			i++
		})
		t.Logf("fresh %v: %.3f heap allocations per delivery", fresh, perCall)
		assert.Less(t, perCall, 0.25, "heap allocations per enqueue of one delivery (fresh %v)", fresh)
		assert.Equal(t, warm+runs, m.Len())
	}
}

// mallocsPerCall returns the heap allocations per call of f over runs calls, as a
// fraction (testing.AllocsPerRun rounds down to a whole number). Nothing else may run
// meanwhile.
func mallocsPerCall(runs int, f func()) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(runs)
}

// What Send enqueues (enqueueFresh) reaches the ID index only when a claim absorbs it;
// every method that finds deliveries by ID or scans them must see it before that.
func TestMemoryFreshDeliveriesAreVisibleBeforeAnyClaim(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	fresh := func(t *testing.T) (*MemoryStore, Delivery) {
		m := NewMemoryStore(0)
		d := pendingDelivery(newDeliveryID(now), now)
		require.NoError(t, m.enqueueFresh(t.Context(), []Delivery{d}))
		require.Equal(t, int64(1), m.inIntakeLen(), "not absorbed yet")
		return m, d
	}
	t.Run("Get", func(t *testing.T) {
		m, d := fresh(t)
		got, err := m.Get(t.Context(), d.ID)
		require.NoError(t, err)
		assert.Equal(t, StatePending, got.State)
	})
	t.Run("Attempts", func(t *testing.T) {
		m, d := fresh(t)
		as, err := m.Attempts(t.Context(), d.ID)
		require.NoError(t, err)
		assert.Empty(t, as)
	})
	t.Run("List", func(t *testing.T) {
		m, d := fresh(t)
		res, err := m.List(t.Context(), ListParams{})
		require.NoError(t, err)
		require.Len(t, res.Deliveries, 1)
		assert.Equal(t, d.ID, res.Deliveries[0].ID)
	})
	t.Run("Requeue", func(t *testing.T) {
		m, d := fresh(t)
		_, err := m.Requeue(t.Context(), RequeueParams{Now: now, IDs: []string{d.ID}})
		assert.ErrorIs(t, err, ErrInvalidState, "a pending delivery is found, and cannot be requeued")
	})
	t.Run("EnqueueOfTheSameID", func(t *testing.T) {
		m, d := fresh(t)
		assert.ErrorIs(t, m.Enqueue(t.Context(), []Delivery{d}), ErrDuplicateDelivery)
		assert.Equal(t, 1, m.Len())
	})
	t.Run("ClaimThenRecord", func(t *testing.T) {
		m, d := fresh(t)
		got, err := m.Claim(t.Context(), ClaimParams{Now: now, Limit: 8, Owner: "o", LeaseUntil: now.Add(time.Hour)})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Zero(t, m.inIntakeLen())
		require.NoError(t, m.Record(t.Context(), RecordParams{DeliveryID: d.ID, Owner: "o", Now: now,
			Attempt: &Attempt{StartedAt: now, StatusCode: 204}, State: StateSucceeded}))
		assert.Zero(t, m.Len())
	})
}

type countingRoundTripper struct{ n atomic.Int32 }

func (c *countingRoundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	c.n.Add(1)
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Header: http.Header{}}, nil
}

// A claim works out which endpoints are paused before it takes deliveries, so one made
// as a Retry-After arrives can take a delivery for the endpoint just paused. The attempt
// checks again and hands it back as it was (keeping its place in line), without a
// request.
func TestAnAttemptWaitsOutAPauseThatBeganAfterItsClaim(t *testing.T) {
	rt := &countingRoundTripper{}
	m := NewMemoryStore(0)
	s, err := NewSender(WithStore(m), WithTransport(rt), WithWorkers(1),
		WithEndpoints(Endpoint{ID: "ep", URL: "https://r.test/", Secret: NewSecret()}))
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close(context.Background())) }()

	now := time.Now()
	later := now.Add(time.Hour) // due later, so the Sender's own dispatcher leaves it
	d := pendingDelivery(newDeliveryID(now), now)
	d.NextAttemptAt = later
	require.NoError(t, m.Enqueue(t.Context(), []Delivery{d}))
	claimed, err := m.Claim(t.Context(), ClaimParams{Now: later, Limit: 1, Owner: s.id, LeaseUntil: later.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, claimed, 1)

	pause := s.clock.Now().Add(time.Minute)
	s.health.record("ep", ticket{}, s.clock.Now(), healthRateLimited, pause) // a 429 with Retry-After: 60
	clock, release := newAttemptClock(s.baseCtx)
	defer release()
	s.attempt(clock, claimed[0])

	assert.Zero(t, rt.n.Load(), "requests sent to the paused endpoint")
	got, err := m.Get(t.Context(), d.ID)
	require.NoError(t, err)
	assert.Equal(t, StatePending, got.State)
	assert.Zero(t, got.Attempts)
	assert.True(t, got.NextAttemptAt.Equal(later), "due as it was: %v, want %v", got.NextAttemptAt, later)
	assert.Empty(t, got.LeaseOwner)
}
