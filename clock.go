package webhook

import "time"

// Clock is the time source of a Sender. The default is the system clock; tests inject
// webhooktest.Clock to control when retries become due without sleeping.
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that delivers on its channel once d has elapsed.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the Sender uses.
type Timer interface {
	// C returns the channel on which the time is delivered.
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether it stopped a pending timer.
	Stop() bool
}

// SystemClock is the Clock backed by package time. It is the default.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }
