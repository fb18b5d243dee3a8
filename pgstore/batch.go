package pgstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// batchFlushers is how many batches of one kind may be written at once. Two keep the
// database busy while a batch's results travel back, without spreading calls so thin that
// batches stay small.
const batchFlushers = 2

// errClosed is returned by calls made after Close.
var errClosed = errors.New("pgstore: store closed; create a new one with New")

// Request states: a flusher takes a queued request unless its caller abandoned it first.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

type request[T any] struct {
	arg   T
	state atomic.Int32
	done  chan error // buffered: the flusher never blocks on an answer
}

// batcher group-commits concurrent calls: a flusher takes one call, plus every call that
// is waiting at that moment (up to max), and writes them together. Nothing waits for a
// batch to fill, so a lone call costs one round trip, and under load the batch grows to
// whatever arrived during the previous write.
type batcher[T any] struct {
	in    chan *request[T] // unbuffered: a send succeeds only into a flusher's hands
	max   int
	write func([]*request[T])
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newBatcher[T any](max int, stop chan struct{}, write func([]*request[T])) *batcher[T] {
	b := &batcher[T]{in: make(chan *request[T]), max: max, write: write, stop: stop}
	b.wg.Add(batchFlushers)
	for range batchFlushers {
		go b.flush()
	}
	return b
}

// do queues arg and returns its result. If ctx ends before a flusher takes the call, it is
// dropped and ctx's error returned; once taken, do waits for the write's outcome, so an
// error return means the call had no effect.
func (b *batcher[T]) do(ctx context.Context, arg T) error {
	r := &request[T]{arg: arg, done: make(chan error, 1)}
	select {
	case b.in <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return errClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		return <-r.done
	}
}

func (b *batcher[T]) flush() {
	defer b.wg.Done()
	batch := make([]*request[T], 0, b.max)
	for {
		batch = batch[:0]
		select {
		case r := <-b.in:
			batch = append(batch, r)
		case <-b.stop:
			return
		}
	more:
		for len(batch) < b.max {
			select {
			case r := <-b.in:
				batch = append(batch, r)
			default:
				break more
			}
		}
		live := batch[:0]
		for _, r := range batch {
			if r.state.CompareAndSwap(reqQueued, reqTaken) {
				live = append(live, r)
			}
		}
		if len(live) > 0 {
			b.write(live)
		}
	}
}

func (b *batcher[T]) wait() { b.wg.Wait() }
