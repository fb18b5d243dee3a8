package webhook

import (
	"context"
	"sync"
	"time"
)

// attemptClock times one worker's attempts: each attempt gets a context of its own that
// ends when the attempt's timeout passes, when the attempt is over, or when Close aborts
// in-flight attempts, as context.WithTimeout of the Sender's base context would. The
// timer and the abort hook are made once per worker rather than once per attempt.
//
// context.WithTimeout cost seven allocations per attempt (the timer context, its timer,
// its done channel, and the children map that net/http's own per-request context
// registers in). An attemptCtx is not a *context.cancelCtx but has an AfterFunc method,
// which the context package uses to register derived contexts by callback (no
// goroutine, no map). Each attempt's context is its own value, done for good once done,
// so whatever holds on to an old one (an asynchronous dial, say) sees it consistently.
type attemptClock struct {
	timer *time.Timer // fires expire; reset and stopped per attempt

	mu      sync.Mutex
	cur     *attemptCtx // the attempt under way, if any
	aborted bool        // Close gave up waiting: every attempt from now on is done at once

	// rec is the worker's attempt record, reused when the store copies it at once
	// (see Sender.attemptRecord).
	rec Attempt
}

// newAttemptClock returns a worker's attempt clock, aborted (for good) once base ends,
// and a function that releases it when the worker exits.
func newAttemptClock(base context.Context) (*attemptClock, func()) {
	c := &attemptClock{}
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	stopAbort := context.AfterFunc(base, c.abort)
	return c, func() { stopAbort(); c.timer.Stop() }
}

// begin returns the context of an attempt ending at deadline.
func (c *attemptClock) begin(deadline time.Time) *attemptCtx {
	a := &attemptCtx{done: make(chan struct{}), deadline: deadline}
	c.mu.Lock()
	if c.aborted {
		c.mu.Unlock()
		a.fire(context.Canceled)
		return a
	}
	c.cur = a
	c.mu.Unlock()
	c.timer.Reset(time.Until(deadline))
	return a
}

// end ends a's context once its attempt is over (the response body closed), as
// cancelling a context.WithTimeout would.
func (c *attemptClock) end(a *attemptCtx) {
	c.timer.Stop()
	c.mu.Lock()
	if c.cur == a {
		c.cur = nil
	}
	c.mu.Unlock()
	a.fire(context.Canceled) // a no-op if it timed out or was aborted
}

// expire runs on the timer's goroutine. A timer that fired for an earlier attempt just
// as that attempt ended may run this late, during the next attempt: the deadline check
// makes such a late run do nothing.
func (c *attemptClock) expire() {
	c.mu.Lock()
	a := c.cur
	c.mu.Unlock()
	if a != nil && !time.Now().Before(a.deadline) {
		a.fire(context.DeadlineExceeded)
	}
}

// abort ends the attempt under way, if any, and every later one.
func (c *attemptClock) abort() {
	c.mu.Lock()
	c.aborted = true
	a := c.cur
	c.mu.Unlock()
	if a != nil {
		a.fire(context.Canceled)
	}
}

// attemptCtx is the context of one attempt; see attemptClock.
type attemptCtx struct {
	done     chan struct{}
	deadline time.Time

	mu     sync.Mutex
	err    error // non-nil once done is closed
	nextID int
	afters []afterFunc // callbacks registered by derived contexts
	inline [2]afterFunc
}

type afterFunc struct {
	id int
	f  func()
}

var _ context.Context = (*attemptCtx)(nil)

// fire ends the context with err, once, and then runs the registered callbacks.
func (a *attemptCtx) fire(err error) {
	a.mu.Lock()
	if a.err != nil {
		a.mu.Unlock()
		return
	}
	a.err = err
	close(a.done)
	afters := a.afters
	a.afters = nil
	a.mu.Unlock()
	// The context package's callbacks only cancel a derived context, which does not
	// block: run here, not in a goroutine each. They read a.Err, so not under a.mu.
	for _, af := range afters {
		af.f()
	}
}

// Deadline implements context.Context.
func (a *attemptCtx) Deadline() (time.Time, bool) { return a.deadline, true }

// Done implements context.Context.
func (a *attemptCtx) Done() <-chan struct{} { return a.done }

// Err implements context.Context.
func (a *attemptCtx) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Value implements context.Context: an attempt carries no values.
func (*attemptCtx) Value(any) any { return nil }

// AfterFunc arranges for f to run once the context is done (at once, in a goroutine of
// its own, if it is done already) and returns a function that cancels that, reporting
// whether it did. The context package uses it to cancel contexts derived from this one.
func (a *attemptCtx) AfterFunc(f func()) func() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		go f()
		return func() bool { return false }
	}
	if a.afters == nil {
		a.afters = a.inline[:0]
	}
	a.nextID++
	id := a.nextID
	a.afters = append(a.afters, afterFunc{id: id, f: f})
	return func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for i, af := range a.afters {
			if af.id == id {
				a.afters = append(a.afters[:i], a.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}
