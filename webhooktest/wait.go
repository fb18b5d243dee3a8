package webhooktest

import (
	"context"
	"sync"
)

// waiter lets goroutines block until a condition holds, without polling: every change
// that may make a condition true calls signal. Its methods must be called with the lock
// guarding the condition held.
type waiter struct {
	changed chan struct{} // closed by the next signal; nil until someone waits
}

// signal wakes every goroutine blocked in waitUntil on w.
func (w *waiter) signal() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}

// waitUntil blocks until cond, evaluated with mu held, is true, or ctx is done.
func waitUntil(ctx context.Context, mu *sync.Mutex, w *waiter, cond func() bool) error {
	for {
		mu.Lock()
		if cond() {
			mu.Unlock()
			return nil
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		changed := w.changed
		mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
