package webhook

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Deliveries finishing while Sends wait for room wake one waiter at a time: each used to
// hand the baton to another waiter while the first still waited its turn to run, and at
// full speed every Send parked and woke once. With one processor, a woken waiter runs
// only once this goroutine yields, so every waiter the finishes woke shows up here.
func TestFinishingDeliveriesWakeOneRoomWaiterAtATime(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s, err := NewSender(WithQueueCapacity(1))
	require.NoError(t, err)
	// Bounded, so a waiter that never arrives fails the test rather than hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	defer func() { _ = s.Close(t.Context()) }()

	const waiters = 8
	arrived := make(chan struct{}, waiters)
	arrival := func(what string) {
		t.Helper()
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatal(what)
		}
	}
	parked := make(chan struct{}, 2*waiters)
	s.testHookRoomWait = func(bool) { parked <- struct{}{} }
	release := make(chan struct{})
	errReleased := errors.New("released")
	for range waiters {
		go func() {
			tries := 0
			_ = s.withRoom(ctx, func() error {
				// The first try, and the one just before waiting, find no room; a try
				// after a wake-up reports in and waits for the end of the test.
				if tries++; tries <= 2 {
					return errMemoryFull
				}
				arrived <- struct{}{}
				<-release
				return errReleased
			})
		}()
	}
	for range waiters {
		select {
		case <-parked:
		case <-ctx.Done():
			t.Fatal("the waiters did not all come to wait")
		}
	}
	defer close(release)

	for range waiters {
		s.passRoom() // as deliveries finishing one after another do
	}
	arrival("no waiter was woken")
	for range 100 {
		runtime.Gosched() // any other waiter woken runs now
	}
	assert.Zero(t, len(arrived), "waiters woken by finishes before the first took the baton")

	// Once the woken waiter took the baton, the next finish wakes the next waiter.
	s.passRoom()
	arrival("the finish after the baton was taken woke no waiter")
}
