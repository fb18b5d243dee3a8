package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// admission is Send's last stage: it stores a Send's deliveries, and when the store is
// full it waits for room (unless fail-fast). One delivery finishing wakes one waiting
// Send, which on getting in passes the wake on, since more room may remain; so a finish
// wakes one caller rather than all. The poll covers room made by other processes sharing
// the store.
type admission struct {
	store    Store
	failFast bool
	clock    Clock
	poll     time.Duration
	room     chan struct{} // cap 1: room was made; one waiting Send tries again
	stop     <-chan struct{}
}

// roomFreed says a delivery finished. It never blocks.
func (a *admission) roomFreed() {
	select {
	case a.room <- struct{}{}:
	default:
	}
}

// enqueue stores ds, waiting for room while the store is full unless fail-fast.
func (a *admission) enqueue(ctx context.Context, ds []Delivery) error {
	err := a.store.Enqueue(ctx, ds)
	if !errors.Is(err, ErrQueueFull) || a.failFast {
		return err
	}
	t := a.clock.NewTimerAt(a.clock.Now().Add(a.poll))
	defer func() { t.Stop() }()
	for {
		select {
		case <-a.room:
		case <-t.C():
			t = a.clock.NewTimerAt(a.clock.Now().Add(a.poll))
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
