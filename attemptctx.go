package webhook

import (
	"context"
	"sync"
	"time"
)

// attemptClock times one worker's attempts. Each attempt runs under a context that is
// done when the attempt's timeout passes or when Close aborts in-flight attempts, as a
// context.WithTimeout of the Sender's base context would be.
//
// It is built for the transport's sake. A request context that can be cancelled costs
// net/http a derived context per request, registered with its parent. When the parent
// is a context package cancelCtx, that registration is a map insert and delete under
// the parent's lock; for any other context type it is two closures, a wrapper and a
// callback list. A context.WithTimeout per attempt adds a timer, a done channel and a
// children map each time. So a worker's attempts share one cancellable context (ctx),
// and each attempt gets only a small wrapper (attemptCtx) that adds its deadline. A
// timeout spends the shared context: expire cancels it, with context.DeadlineExceeded
// as the cause, and the next attempt gets a new one. So does every
// attemptsPerContext-th attempt, so that what a RoundTripper leaves registered with
// the context (a derived context it never cancels, an AfterFunc it never stops) is
// let go of, as it would be when a per-attempt context ended.
//
// The timer is not reset for every attempt either. While attempts follow one another
// it stays armed for an earlier attempt's deadline, which is never later than the
// current one's; when it fires, expire re-arms it for the attempt under way.
//
// Against a context and a timer per attempt, this took the Sender from 0.83x to 0.85x
// of raw net/http's deliveries/s at 64 workers, both run in the same paired bench.
type attemptClock struct {
	timer *time.Timer // runs expire

	mu sync.Mutex
	// ctx is the context attempts share; not derived from the base context, so that a
	// replaced one is simply dropped. abort cancels it.
	ctx     context.Context
	cancel  context.CancelCauseFunc
	uses    int  // attempts begun under ctx; at attemptsPerContext the next gets a new one
	aborted bool // Close gave up waiting: every attempt from now on is done at once
	// deadline is the deadline of the attempt under way, zero between attempts.
	deadline time.Time
	// armedAt is when the timer fires, zero when it is not armed.
	armedAt time.Time

	// rec is the worker's attempt record, reused when the store copies it at once
	// (see Sender.attemptRecord).
	rec Attempt
}

// attemptsPerContext is how many attempts share one context at most (see attemptClock).
const attemptsPerContext = 1024

// newAttemptClock returns a worker's attempt clock, whose attempts are aborted (for
// good) once base ends, and a function that releases it when the worker exits.
func newAttemptClock(base context.Context) (*attemptClock, func()) {
	c := &attemptClock{}
	c.renew()
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	stopAbort := context.AfterFunc(base, c.abort)
	return c, func() { stopAbort(); c.timer.Stop() }
}

// renew gives the attempts from now on a new context, done at once if Close aborted
// them; c.mu is held. The old one is dropped, not cancelled: an attempt that ended
// under it has no more use for it, and cancelling it could reach net/http before it
// has put the attempt's connection back for reuse.
func (c *attemptClock) renew() {
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.uses = 0
	if c.aborted {
		c.cancel(context.Canceled)
	}
}

// begin returns the context of an attempt ending at deadline.
func (c *attemptClock) begin(deadline time.Time) *attemptCtx {
	c.mu.Lock()
	if c.uses >= attemptsPerContext {
		c.renew()
	}
	c.uses++
	c.deadline = deadline
	if c.armedAt.IsZero() || deadline.Before(c.armedAt) {
		c.armAt(deadline)
	}
	a := &attemptCtx{Context: c.ctx, deadline: deadline}
	c.mu.Unlock()
	return a
}

// armAt arms the timer to fire at t; c.mu is held.
func (c *attemptClock) armAt(t time.Time) {
	c.armedAt = t
	c.timer.Reset(time.Until(t))
}

// end marks the attempt over (its response body read and closed), so that expire
// leaves the shared context alone. The timer stays armed: the next attempt most often
// begins at once, and otherwise it fires once more for nothing.
func (c *attemptClock) end() {
	c.mu.Lock()
	c.deadline = time.Time{}
	c.mu.Unlock()
}

// expire runs on the timer's goroutine. It ends the attempt under way if its deadline
// has passed, and otherwise re-arms the timer for that deadline: the timer may have
// been armed for an earlier attempt's, or have fired for one just as it ended.
func (c *attemptClock) expire() {
	c.mu.Lock()
	c.armedAt = time.Time{}
	var cancel context.CancelCauseFunc
	switch {
	case c.deadline.IsZero(): // between attempts
	case time.Now().Before(c.deadline):
		c.armAt(c.deadline)
	default:
		cancel, c.uses = c.cancel, attemptsPerContext // the next attempt gets a new one
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel(context.DeadlineExceeded)
	}
}

// abort ends the attempt under way, if any, and every later one.
func (c *attemptClock) abort() {
	c.mu.Lock()
	c.aborted = true
	cancel := c.cancel
	c.mu.Unlock()
	cancel(context.Canceled)
}

// attemptCtx is the context of one attempt: the worker's shared context with the
// attempt's deadline. The context package and net/http see through it to the shared
// context (Value and Done are its), so contexts derived from an attempt register with
// that cancelCtx directly.
type attemptCtx struct {
	context.Context
	deadline time.Time
}

var _ context.Context = (*attemptCtx)(nil)

// Deadline implements context.Context.
func (a *attemptCtx) Deadline() (time.Time, bool) { return a.deadline, true }

// Err implements context.Context: context.DeadlineExceeded once the attempt timed out,
// context.Canceled once Close aborted it, as context.WithTimeout's would be.
func (a *attemptCtx) Err() error {
	err := a.Context.Err()
	if err != nil && context.Cause(a.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}
