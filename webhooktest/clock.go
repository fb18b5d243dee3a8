package webhooktest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hooksmith/webhook"
)

var _ webhook.Clock = (*Clock)(nil)

// Clock is a fake webhook.Clock whose time moves only when the test calls Advance or Set.
// Timers made by NewTimerAt fire when the clock reaches their deadline, never on their own,
// so code under test that waits for a retry can be driven without sleeping.
//
// The zero Clock is ready to use and reads the zero time; NewClock starts elsewhere.
// A Clock is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	pending []*clockTimer
	changed waiter // signalled when pending changes
}

// NewClock returns a Clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and fires every pending timer whose deadline is at
// or before the new time. A negative d moves the clock back and fires nothing.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

// Set moves the clock to t and fires every pending timer whose deadline is at or before t.
// Setting a time before Now moves the clock back and fires nothing.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	c.fireLocked()
}

// NewTimerAt returns a timer that fires once the clock reaches at. Its channel has a
// buffer of one and receives the clock's time at the moment it fired. A deadline at or
// before Now fires at once, and such a timer is never counted by Timers. Stopping the
// timer before it fires removes it from the pending ones and reports true; it reports
// false once the timer has fired or been stopped.
//
// Because deadlines are absolute, a test that advances the clock while the code under
// test is still computing its deadline cannot make that code miss it.
func (c *Clock) NewTimerAt(at time.Time) webhook.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &clockTimer{clock: c, when: at, c: make(chan time.Time, 1)}
	if !at.After(c.now) {
		t.c <- c.now
		return t
	}
	c.pending = append(c.pending, t)
	c.changed.signal()
	return t
}

// Timers returns the number of pending timers: made by NewTimerAt, neither fired nor stopped.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// WaitForTimers blocks until at least n timers are pending, so a test knows the code under
// test is waiting before it calls Advance. It returns ctx.Err() if ctx ends first; give it
// a deadline so a test that never gets there fails instead of hanging.
func (c *Clock) WaitForTimers(ctx context.Context, n int) error {
	return waitUntil(ctx, &c.mu, &c.changed, func() bool { return len(c.pending) >= n })
}

// fireLocked fires and forgets every pending timer that is due.
func (c *Clock) fireLocked() {
	n := len(c.pending)
	c.pending = slices.DeleteFunc(c.pending, func(t *clockTimer) bool {
		if t.when.After(c.now) {
			return false
		}
		select {
		case t.c <- c.now:
		default: // a timer fires once, so its buffer is empty; never block the test
		}
		return true
	})
	if len(c.pending) != n {
		c.changed.signal()
	}
}

type clockTimer struct {
	clock *Clock
	when  time.Time
	c     chan time.Time
}

func (t *clockTimer) C() <-chan time.Time { return t.c }

func (t *clockTimer) Stop() bool {
	c := t.clock
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.pending, t)
	if i < 0 {
		return false
	}
	c.pending = slices.Delete(c.pending, i, i+1)
	c.changed.signal()
	return true
}
