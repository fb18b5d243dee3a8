package filestore

import (
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// committer group-commits writes: one goroutine takes every write waiting for it and
// commits them in one transaction, so concurrent writers share its fsyncs. Writes
// that arrive while a commit runs wait for the next one, which makes the groups as large
// as the load: a lone writer commits at once, and 64 concurrent ones share commits.
//
// bbolt's DB.Batch does the same behind a fixed delay that every group waits out;
// measured on the benchmark, that delay cost more throughput than it gathered, and it
// adds latency to every lone write. Here a group waits only for as many writers as the
// previous group had (up to maxDelay): under steady load the writers just answered are
// back within microseconds, and without that wait they would split into a group of the
// first to return and a group of the rest.
type committer struct {
	db       *bolt.DB
	maxDelay time.Duration
	maxSize  int
	reqs     chan *writeReq
	quit     chan struct{}
	done     chan struct{}
}

type writeReq struct {
	fn  func(*bolt.Tx) error
	err chan error
}

func startCommitter(db *bolt.DB, maxDelay time.Duration, maxSize int) *committer {
	c := &committer{
		db: db, maxDelay: maxDelay, maxSize: maxSize,
		reqs: make(chan *writeReq),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go c.run()
	return c
}

// stop ends the goroutine after the group it is committing; later writes fail with
// ErrClosed.
func (c *committer) stop() {
	close(c.quit)
	<-c.done
}

// write runs fn in a write transaction shared with other writes and returns once it is
// committed. fn must be safe to run more than once: when another write of its group
// fails, the group is rolled back and run again without it. An error fn returns fails
// only its own write.
func (c *committer) write(fn func(*bolt.Tx) error) error {
	r := &writeReq{fn: fn, err: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-c.quit:
		return ErrClosed
	}
	return <-r.err
}

func (c *committer) run() {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var group []*writeReq
	expect := 1
	for {
		select {
		case r := <-c.reqs:
			group = append(group[:0], r)
		case <-c.quit:
			return
		}
		// Take whoever is already waiting, then wait a little for the rest of the
		// previous group's size.
		waiting := false
	gather:
		for len(group) < c.maxSize {
			select {
			case r := <-c.reqs:
				group = append(group, r)
				continue
			default:
			}
			if len(group) >= expect {
				break
			}
			if !waiting {
				timer.Reset(c.maxDelay)
				waiting = true
			}
			select {
			case r := <-c.reqs:
				group = append(group, r)
			case <-timer.C:
				waiting = false
				break gather
			case <-c.quit:
				break gather
			}
		}
		if waiting {
			timer.Stop() // since Go 1.23 no stale tick can be received after Stop
		}
		expect = len(group)
		c.commit(group)
		clear(group)
	}
}

// commit runs the group in one transaction. A write whose function fails is taken out
// and run alone, so its error is its own, and the rest are run again.
func (c *committer) commit(group []*writeReq) {
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, r := range group {
				if err := r.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, r := range group {
				r.err <- err
			}
			return
		}
		r := group[failed]
		group = slices.Delete(slices.Clone(group), failed, failed+1) // the caller's slice stays whole
		if len(group) == 0 {
			r.err <- err // it ran alone already
			return
		}
		r.err <- c.db.Update(r.fn)
	}
}
