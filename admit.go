package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// admission is Send's last stage: it stores a Send's deliveries, and when the store is
// full it waits for room (unless fail-fast). A delivery finishing wakes one waiting Send,
// unless one woken already has yet to run: at full speed, finishes made meanwhile leave
// room that the callers coming back from a Send take without waiting at all. A waiter
// that gets in passes the wake on, since more room may remain. For room made by other
// processes sharing the store, the poll (run by the Sender) wakes one every poll
// interval the same way.
type admission struct {
	store    Store
	failFast bool
	room     chan struct{} // cap 1: room may have been made; one waiting Send tries again
	woken    atomic.Bool   // set from a wake until the waiter it woke runs
	stop     <-chan struct{}
}

// poll wakes a waiting Send every interval until stop is closed.
func (a *admission) poll(clock Clock, interval time.Duration) {
	for {
		t := clock.NewTimerAt(clock.Now().Add(interval))
		select {
		case <-a.stop:
			t.Stop()
			return
		case <-t.C():
			a.roomFreed()
		}
	}
}

// roomFreed says a delivery finished. It never blocks.
func (a *admission) roomFreed() {
	if !a.woken.CompareAndSwap(false, true) {
		return
	}
	select {
	case a.room <- struct{}{}:
	default: // a wake is in the channel already
	}
}

// enqueue stores ds, waiting for room while the store is full unless fail-fast.
func (a *admission) enqueue(ctx context.Context, ds []Delivery) error {
	err := a.store.Enqueue(ctx, ds)
	if !errors.Is(err, ErrQueueFull) || a.failFast {
		return err
	}
	for {
		select {
		case <-a.room:
			a.woken.Store(false)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrQueueFull, ctx.Err())
		case <-a.stop:
			return ErrClosed
		}
		if err = a.store.Enqueue(ctx, ds); !errors.Is(err, ErrQueueFull) {
			if err == nil {
				a.roomFreed() // pass the wake on: more room may remain
			}
			return err
		}
	}
}
