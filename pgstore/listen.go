package pgstore

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Reconnection backoff of the LISTEN connection.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// Notify implements store.Notifier. Each call returns a new channel (buffer 1, never
// blocked on) that receives a value when deliveries are enqueued, requeued or rescheduled
// by any process on the store's tables, and after the LISTEN connection is re-established
// (notifications may have been missed meanwhile). The first call starts the listener on a
// connection it takes from the pool for good; Close stops it.
func (s *Store) Notify() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.subsMu.Lock()
	s.subs = append(s.subs, ch)
	s.subsMu.Unlock()
	s.listenOnce.Do(func() {
		s.listenDone = make(chan struct{})
		go s.listen()
	})
	return ch
}

func (s *Store) wake() {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// listen holds a dedicated connection in LISTEN until Close, reconnecting with backoff.
func (s *Store) listen() {
	defer close(s.listenDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := listenBackoffMin
	for {
		err := s.listenConn(ctx, func() {
			// Work committed before LISTEN took effect was not announced: look now.
			s.wake()
			backoff = listenBackoffMin
		})
		if ctx.Err() != nil {
			return
		}
		s.cfg.logger.Warn("pgstore: LISTEN connection lost; reconnecting", zap.Error(err), zap.Duration("backoff", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenConn acquires a connection, listens until an error, and closes the connection
// (it is taken out of the pool, so its LISTEN never leaks to other users).
func (s *Store) listenConn(ctx context.Context, ready func()) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+quote(s.cfg.channel)); err != nil {
		return err
	}
	ready()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		s.wake()
	}
}
