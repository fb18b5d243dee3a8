package webhook

import (
	"context"
	"sync"
	"time"
)

// attemptCtx is one worker's context for its attempts: it ends when the attempt's
// timeout passes or when Close aborts in-flight attempts, like context.WithTimeout of
// the Sender's base context, but it is made once per worker and re-armed per attempt.
//
// context.WithTimeout cost seven allocations per attempt (the timer context, its timer,
// its done channel, and the children map that net/http's own per-request context
// registers in), about a tenth of the Sender's bytes per delivery. A context that is
// not a *context.cancelCtx but has an AfterFunc method is one the context package
// registers children with by callback instead (no goroutine), so net/http's
// per-request context costs only its own allocations, as it does for the ceiling.
//
// A worker runs one attempt at a time: begin arms it, end disarms it. Its done channel
// is kept from one attempt to the next until an attempt times out; then end makes a
// fresh one, so whatever saw the old one closed keeps seeing it closed.
type attemptCtx struct {
	timer *time.Timer // fires expire; stopped and reset per attempt

	mu       sync.Mutex
	done     chan struct{}
	err      error     // non-nil once done is closed
	deadline time.Time // of the current attempt
	active   bool      // between begin and end
	aborted  bool      // Close gave up waiting: every attempt from now on is done at once
	nextID   uint64
	afters   []afterFunc // callbacks registered by derived contexts of this attempt
}

type afterFunc struct {
	id uint64
	f  func()
}

var _ context.Context = (*attemptCtx)(nil)

// newAttemptCtx returns a worker's attempt context, aborted (for good) once base ends,
// and a function that releases it when the worker exits.
func newAttemptCtx(base context.Context) (*attemptCtx, func()) {
	a := &attemptCtx{done: make(chan struct{})}
	a.timer = time.AfterFunc(time.Hour, a.expire)
	a.timer.Stop()
	stopAbort := context.AfterFunc(base, a.abort)
	return a, func() { stopAbort(); a.timer.Stop() }
}

// begin arms the context for an attempt ending at deadline.
func (a *attemptCtx) begin(deadline time.Time) {
	a.mu.Lock()
	a.deadline, a.active = deadline, true
	if a.aborted {
		a.fireLocked(context.Canceled)
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.timer.Reset(time.Until(deadline))
}

// end disarms the context once the attempt is over (its response body closed).
func (a *attemptCtx) end() {
	a.timer.Stop()
	a.mu.Lock()
	a.active = false
	clear(a.afters)
	a.afters = a.afters[:0]
	if a.err != nil && !a.aborted {
		a.done, a.err = make(chan struct{}), nil
	}
	a.mu.Unlock()
}

// expire runs on the timer's goroutine. A timer that fired for an earlier attempt just
// as that attempt ended may run this late, even during the next attempt: the deadline
// check makes such a late run do nothing.
func (a *attemptCtx) expire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active && !time.Now().Before(a.deadline) {
		a.fireLocked(context.DeadlineExceeded)
	}
}

// abort ends the current attempt, if any, and every later one.
func (a *attemptCtx) abort() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.aborted = true
	if a.active {
		a.fireLocked(context.Canceled)
	}
}

// fireLocked closes done with err, once, and runs the registered callbacks, each in a
// goroutine of its own as context.AfterFunc does. The caller holds a.mu.
func (a *attemptCtx) fireLocked(err error) {
	if a.err != nil {
		return
	}
	a.err = err
	close(a.done)
	for _, af := range a.afters {
		go af.f()
	}
	clear(a.afters)
	a.afters = a.afters[:0]
}

// Deadline implements context.Context.
func (a *attemptCtx) Deadline() (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.deadline, true
}

// Done implements context.Context.
func (a *attemptCtx) Done() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done
}

// Err implements context.Context.
func (a *attemptCtx) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Value implements context.Context: an attempt carries no values.
func (*attemptCtx) Value(any) any { return nil }

// AfterFunc arranges for f to run, in its own goroutine, once the current attempt's
// context is done, and returns a function that cancels that (reporting whether it did).
// The context package uses it to cancel contexts derived from this one without a
// goroutine per derived context.
func (a *attemptCtx) AfterFunc(f func()) func() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		go f()
		return func() bool { return false }
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
