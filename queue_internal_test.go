package webhook

import (
	"context"
	"fmt"
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

func TestAttemptCtxTimesOutEachAttemptAndRearms(t *testing.T) {
	a, release := newAttemptCtx(context.Background())
	defer release()

	a.begin(time.Now().Add(5 * time.Millisecond))
	waitDone(t, a)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	old := a.Done()
	a.end()

	a.begin(time.Now().Add(time.Hour))
	assert.False(t, isDone(a), "a timed-out attempt does not end the next one")
	assert.NoError(t, a.Err())
	assert.True(t, isDone(contextOf(old)), "whoever saw the timed-out attempt still sees it done")
	dl, ok := a.Deadline()
	assert.True(t, ok)
	assert.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
	a.end()
}

// contextOf wraps a done channel so isDone can read it.
func contextOf(done <-chan struct{}) context.Context {
	return doneCtx{Context: context.Background(), d: done}
}

type doneCtx struct {
	context.Context
	d <-chan struct{}
}

func (c doneCtx) Done() <-chan struct{} { return c.d }

func TestAttemptCtxIgnoresALateTimerFromAnEarlierAttempt(t *testing.T) {
	a, release := newAttemptCtx(context.Background())
	defer release()
	// The timer of an attempt that ended just as it fired runs expire late, while the
	// next attempt is under way, or after it: neither may end anything.
	a.begin(time.Now().Add(time.Hour))
	a.expire()
	assert.False(t, isDone(a), "an attempt before its deadline is not expired")
	a.end()
	a.expire()
	assert.False(t, isDone(a), "no attempt under way: nothing to expire")
	assert.NoError(t, a.Err())
}

func TestAttemptCtxAbortsTheCurrentAndEveryLaterAttempt(t *testing.T) {
	base, cancel := context.WithCancel(context.Background())
	a, release := newAttemptCtx(base)
	defer release()

	a.begin(time.Now().Add(time.Hour))
	cancel()
	waitDone(t, a)
	assert.ErrorIs(t, a.Err(), context.Canceled)
	a.end()

	a.begin(time.Now().Add(time.Hour))
	assert.True(t, isDone(a), "once aborted, an attempt is done as it begins")
	assert.ErrorIs(t, a.Err(), context.Canceled)
	a.end()
}

func TestAttemptCtxCancelsDerivedContextsAndForgetsThem(t *testing.T) {
	a, release := newAttemptCtx(context.Background())
	defer release()

	// A derived context that ends first deregisters from the attempt.
	a.begin(time.Now().Add(time.Hour))
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
	a.end()

	// One still open when the attempt times out is cancelled with it.
	a.begin(time.Now().Add(5 * time.Millisecond))
	child, cancelChild = context.WithTimeout(a, time.Hour)
	defer cancelChild()
	waitDone(t, child)
	assert.ErrorIs(t, child.Err(), context.DeadlineExceeded)
	a.end()

	// One derived once the attempt has timed out is cancelled at once.
	a.begin(time.Now().Add(5 * time.Millisecond))
	waitDone(t, a)
	late, cancelLate := context.WithCancel(a)
	defer cancelLate()
	waitDone(t, late)
	a.end()
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
