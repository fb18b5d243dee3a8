package webhooktest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

var _ webhook.Clock = (*webhooktest.Clock)(nil)

var epoch = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// fired reports whether tm has fired, without blocking, and the time it delivered.
func fired(tm webhook.Timer) (time.Time, bool) {
	select {
	case at := <-tm.C():
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestClockNowAdvanceSet(t *testing.T) {
	c := webhooktest.NewClock(epoch)
	assert.Equal(t, epoch, c.Now())

	c.Advance(90 * time.Second)
	assert.Equal(t, epoch.Add(90*time.Second), c.Now())

	c.Set(epoch.Add(time.Hour))
	assert.Equal(t, epoch.Add(time.Hour), c.Now())

	c.Advance(-time.Hour)
	assert.Equal(t, epoch, c.Now())

	var zero webhooktest.Clock
	assert.True(t, zero.Now().IsZero(), "the zero Clock reads the zero time")
}

func TestClockTimerFiresOnlyWhenDue(t *testing.T) {
	tests := []struct {
		name     string
		after    time.Duration
		steps    []time.Duration // successive Advance calls
		firesAt  int             // index of the step after which the timer fires; -1 never
		wantTime time.Duration   // time delivered, relative to epoch
	}{
		{"exact deadline", time.Minute, []time.Duration{time.Minute}, 0, time.Minute},
		{"past deadline delivers the clock's time", time.Minute, []time.Duration{time.Hour}, 0, time.Hour},
		{"in steps", time.Minute, []time.Duration{20 * time.Second, 39 * time.Second, time.Second}, 2, time.Minute},
		{"not yet", time.Minute, []time.Duration{59 * time.Second}, -1, 0},
		{"no advance", time.Nanosecond, nil, -1, 0},
		{"backwards never fires", time.Minute, []time.Duration{-time.Hour, 30 * time.Minute}, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := webhooktest.NewClock(epoch)
			tm := c.NewTimerAt(c.Now().Add(tt.after))
			assert.Equal(t, 1, c.Timers())
			for i, d := range tt.steps {
				c.Advance(d)
				at, ok := fired(tm)
				if i == tt.firesAt {
					require.True(t, ok, "timer should fire after step %d", i)
					assert.Equal(t, epoch.Add(tt.wantTime), at)
					assert.Equal(t, 0, c.Timers())
				} else {
					require.False(t, ok, "timer fired early, after step %d", i)
				}
			}
			if tt.firesAt < 0 {
				assert.Equal(t, 1, c.Timers())
			}
			c.Advance(24 * time.Hour)
			_, again := fired(tm)
			assert.Equal(t, tt.firesAt < 0, again, "a timer fires exactly once")
		})
	}
}

func TestClockSetFiresDueTimers(t *testing.T) {
	c := webhooktest.NewClock(epoch)
	early, late := c.NewTimerAt(c.Now().Add(time.Second)), c.NewTimerAt(c.Now().Add(time.Hour))

	c.Set(epoch.Add(time.Minute))
	at, ok := fired(early)
	require.True(t, ok)
	assert.Equal(t, epoch.Add(time.Minute), at)
	_, ok = fired(late)
	assert.False(t, ok)
	assert.Equal(t, 1, c.Timers())
}

func TestClockNonPositiveTimerFiresAtOnce(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		c := webhooktest.NewClock(epoch)
		tm := c.NewTimerAt(c.Now().Add(d))
		at, ok := fired(tm)
		require.True(t, ok, "NewTimer(%s) should fire at once", d)
		assert.Equal(t, epoch, at)
		assert.Equal(t, 0, c.Timers(), "a timer that fired is not pending")
		assert.False(t, tm.Stop(), "Stop after firing reports false")
	}
}

func TestClockStop(t *testing.T) {
	c := webhooktest.NewClock(epoch)
	stopped, kept := c.NewTimerAt(c.Now().Add(time.Minute)), c.NewTimerAt(c.Now().Add(time.Minute))
	require.Equal(t, 2, c.Timers())

	assert.True(t, stopped.Stop(), "Stop of a pending timer reports true")
	assert.False(t, stopped.Stop(), "a second Stop reports false")
	assert.Equal(t, 1, c.Timers())

	c.Advance(time.Minute)
	_, ok := fired(stopped)
	assert.False(t, ok, "a stopped timer never fires")
	_, ok = fired(kept)
	assert.True(t, ok)
	assert.False(t, kept.Stop(), "Stop after firing reports false")
}

func TestClockWaitForTimers(t *testing.T) {
	t.Run("returns once the code under test waits", func(t *testing.T) {
		ctx := testContext(t)
		c := webhooktest.NewClock(epoch)
		done := make(chan time.Time)
		go func() { // the code under test: wait a minute of clock time
			tm := c.NewTimerAt(c.Now().Add(time.Minute))
			done <- <-tm.C()
		}()

		require.NoError(t, c.WaitForTimers(ctx, 1))
		c.Advance(59 * time.Second)
		select {
		case <-done:
			t.Fatal("timer fired before its deadline")
		default:
		}
		c.Advance(time.Second)
		select {
		case at := <-done:
			assert.Equal(t, epoch.Add(time.Minute), at)
		case <-ctx.Done():
			t.Fatal("timer did not fire at its deadline")
		}
	})

	t.Run("counts only pending timers", func(t *testing.T) {
		ctx := testContext(t)
		c := webhooktest.NewClock(epoch)
		c.NewTimerAt(c.Now().Add(0))                  // fired at once
		c.NewTimerAt(c.Now().Add(time.Second)).Stop() // stopped
		go func() {
			c.NewTimerAt(c.Now().Add(time.Second))
			c.NewTimerAt(c.Now().Add(time.Hour))
		}()
		require.NoError(t, c.WaitForTimers(ctx, 2))
		assert.Equal(t, 2, c.Timers())
	})

	t.Run("already satisfied", func(t *testing.T) {
		c := webhooktest.NewClock(epoch)
		c.NewTimerAt(c.Now().Add(time.Second))
		assert.NoError(t, c.WaitForTimers(expiredContext(t), 1))
		assert.NoError(t, c.WaitForTimers(expiredContext(t), 0))
	})

	t.Run("context ends first", func(t *testing.T) {
		c := webhooktest.NewClock(epoch)
		c.NewTimerAt(c.Now().Add(time.Second))
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- c.WaitForTimers(ctx, 2) }()
		cancel()
		assert.ErrorIs(t, <-errc, context.Canceled)
		assert.ErrorIs(t, c.WaitForTimers(expiredContext(t), 2), context.DeadlineExceeded)
	})
}

func TestClockConcurrentUse(t *testing.T) {
	const workers, perWorker = 8, 100
	ctx := testContext(t)
	c := webhooktest.NewClock(epoch)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range perWorker {
				tm := c.NewTimerAt(c.Now().Add(time.Duration(i%5+1) * time.Second))
				if i%2 == 0 {
					tm.Stop()
				}
				_ = c.Now()
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			c.Advance(time.Second)
		}
	})
	wg.Wait()
	c.Advance(time.Hour)
	assert.Equal(t, 0, c.Timers(), "every timer fired or was stopped")
	assert.NoError(t, c.WaitForTimers(ctx, 0))
}
