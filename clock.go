package webhook

import "time"

// Clock is the time source of a Sender. The default is the system clock; tests inject
// webhooktest.Clock to control when retries become due without sleeping.
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimerAt returns a timer that delivers on its channel once the clock reaches at
	// (at once if at is not after Now). Deadlines are absolute so that a fake clock
	// advanced while the Sender computes a deadline cannot make it miss the deadline.
	NewTimerAt(at time.Time) Timer
}

// Timer is the part of *time.Timer the Sender uses.
type Timer interface {
	// C returns the channel on which the time is delivered.
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether it stopped a pending timer.
	Stop() bool
}

// SystemClock is the Clock backed by package time: SystemClock{}. It is the default.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// NewTimerAt implements Clock.
func (SystemClock) NewTimerAt(at time.Time) Timer { return sysTimer{time.NewTimer(time.Until(at))} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }
