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

func TestAttemptClockTimesOutEachAttemptAndEndsItsContext(t *testing.T) {
	c, release := newAttemptClock(context.Background())
	defer release()

	a := c.begin(time.Now().Add(5 * time.Millisecond))
	waitDone(t, a)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	c.end(a)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "a context, once done, stays as it was")

	b := c.begin(time.Now().Add(time.Hour))
	assert.False(t, isDone(b), "a timed-out attempt does not end the next one")
	assert.NoError(t, b.Err())
	dl, ok := b.Deadline()
	assert.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
	c.end(b)
	assert.True(t, isDone(b), "an attempt's context is done once it ends, as a cancelled one is")
	assert.ErrorIs(t, b.Err(), context.Canceled)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
}

func TestAttemptClockIgnoresALateTimerFromAnEarlierAttempt(t *testing.T) {
	c, release := newAttemptClock(context.Background())
	defer release()
	// The timer of an attempt that ended just as it fired runs expire late, while the
	// next attempt is under way, or after it: neither may end anything.
	a := c.begin(time.Now().Add(time.Hour))
	c.expire()
	assert.False(t, isDone(a), "an attempt before its deadline is not expired")
	c.end(a)
	c.expire()
	assert.ErrorIs(t, a.Err(), context.Canceled, "no attempt under way: nothing to expire")
}

func TestAttemptClockAbortsTheCurrentAndEveryLaterAttempt(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	c, release := newAttemptClock(base)
	defer release()

	a := c.begin(time.Now().Add(time.Hour))
	cancel()
	waitDone(t, a)
	assert.ErrorIs(t, a.Err(), context.Canceled)
	c.end(a)

	b := c.begin(time.Now().Add(time.Hour))
	assert.True(t, isDone(b), "once aborted, an attempt is done as it begins")
	assert.ErrorIs(t, b.Err(), context.Canceled)
	c.end(b)
}

func TestAttemptCtxCancelsDerivedContextsAndForgetsThem(t *testing.T) {
	c, release := newAttemptClock(context.Background())
	defer release()

	// A derived context that ends first deregisters from the attempt.
	a := c.begin(time.Now().Add(time.Hour))
	child, cancelChild := context.WithCancel(a)
	a.mu.Lock()
	registered := len(a.afters)
	a.mu.Unlock()
	require.Equal(t, 1, registered, "derived contexts register by AfterFunc, not by a goroutine")
	cancelChild()
	a.mu.Lock()
	assert.Empty(t, a.afters, "a cancelled derived context is forgotten")
	a.mu.Unlock()
	assert.ErrorIs(t, child.Err(), context.Canceled)
	c.end(a)

	// One still open when the attempt times out is cancelled with it.
	a = c.begin(time.Now().Add(5 * time.Millisecond))
	child, cancelChild = context.WithTimeout(a, time.Hour)
	defer cancelChild()
	waitDone(t, child)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded)

	// One derived from an attempt that is over, even while the next is under way, is
	// cancelled at once: an old attempt's context stays done.
	c.end(a)
	next := c.begin(time.Now().Add(time.Hour))
	late, cancelLate := context.WithCancel(a)
	defer cancelLate()
	waitDone(t, late)
	assert.ErrorIs(t, late.Err(), context.DeadlineExceeded)
	assert.False(t, isDone(next))
	c.end(next)
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
// checks again and hands it back, due when the pause ends, without a request.
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
	s.health.record("ep", s.clock.Now(), false, pause) // a 429 with Retry-After: 60
	clock, release := newAttemptClock(s.baseCtx)
	defer release()
	s.attempt(clock, claimed[0])

	assert.Zero(t, rt.n.Load(), "requests sent to the paused endpoint")
	got, err := m.Get(t.Context(), d.ID)
	require.NoError(t, err)
	assert.Equal(t, StatePending, got.State)
	assert.Zero(t, got.Attempts)
	assert.True(t, got.NextAttemptAt.Equal(pause), "due at the pause's end: %v, want %v", got.NextAttemptAt, pause)
	assert.Empty(t, got.LeaseOwner)
}
