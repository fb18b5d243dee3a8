package filestore

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrLocked is wrapped by the error Open returns when another Store, in this process or
// another, holds the file. Two processes never write one file: stop the other one, give
// this one another path, or share one *Store between the Senders of a process.
var ErrLocked = errors.New("filestore: database file is locked by another process")

// ErrClosed is returned by every method of a Store after Close.
var ErrClosed = errors.New("filestore: store closed")

// maxIDLen bounds delivery and endpoint IDs so every index key fits bbolt's key limit.
const maxIDLen = 1024

// fileFormat is written into new files and checked when opening old ones.
const fileFormat = 1

var (
	bucketDeliveries = []byte("deliveries") // id → delivery
	bucketAttempts   = []byte("attempts")   // len16 id, number32 → attempt
	bucketDue        = []byte("due")        // len16 endpoint, time, id → (pending)
	bucketHeads      = []byte("heads")      // time, endpoint → each endpoint's earliest due
	bucketLeases     = []byte("leases")     // time, id → endpoint (in flight)
	bucketMeta       = []byte("meta")
	bucketQuarantine = []byte("quarantine") // id → the bytes of a record that could not be decoded

	keyFormat     = []byte("format")
	keyUnfinished = []byte("unfinished")
)

// errRollback aborts a transaction whose callback already set the caller's error.
var errRollback = errors.New("filestore: rollback")

// Store is a webhook.Store kept in one file on local disk, for a single process. Build it
// with Open, give it to webhook.WithStore, and Close it after the Sender. It is safe for
// concurrent use and may be shared by several Senders of the process.
type Store struct {
	db       *bolt.DB
	capacity int
	commits  *committer
	closing  sync.Once
}

var _ webhook.Store = (*Store)(nil)

// Open opens the store at path, creating the file (mode 0600, not its directory) if it
// does not exist. Deliveries left by an earlier process are there as it left them: pending
// ones are due as scheduled, and in-flight ones become claimable when their leases expire.
// If another Store holds the file, Open waits for the lock timeout (WithLockTimeout), then
// fails with an error wrapping ErrLocked. Options that are not valid are reported wrapping
// webhook.ErrInvalidOption.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	timeout := cfg.lockTimeout
	if timeout <= 0 {
		timeout = time.Nanosecond // bbolt waits forever on zero; this tries once
	}
	db, err := openChecked(path, timeout, &bolt.Options{
		Timeout: timeout,
		NoSync:  cfg.noSync,
		// The free list is rebuilt by a scan on open instead of written on every commit:
		// commits are the hot path, opens are rare.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, errLockBusy) || errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by another process or another Open in this one (waited %s); stop the other holder, use a different path, or share one *filestore.Store between Senders", ErrLocked, path, cfg.lockTimeout)
	}
	if errors.Is(err, ErrCorrupt) {
		return nil, fmt.Errorf("%w; restore %s from a backup, or move it aside to start a new store", err, path)
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil && tx.ForEach(func([]byte, *bolt.Bucket) error { return errRollback }) != nil {
			return fmt.Errorf("%s is a bbolt file of another program; give the store a file of its own", path)
		}
		for _, name := range [][]byte{bucketDeliveries, bucketAttempts, bucketDue, bucketHeads, bucketLeases, bucketMeta, bucketQuarantine} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keyFormat); {
		case v == nil:
			return meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, fileFormat))
		case len(v) != 4 || binary.BigEndian.Uint32(v) != fileFormat:
			return fmt.Errorf("%s is not a filestore file of format %d; was it written by another program or a newer version?", path, fileFormat)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("filestore: opening %s: %w", path, err)
	}
	return &Store{db: db, capacity: cfg.capacity, commits: startCommitter(db, cfg.batchDelay, cfg.batchSize)}, nil
}

// Close releases the file. Close the Senders using the store first; calls made after
// Close fail with ErrClosed. It is safe to call more than once.
func (s *Store) Close() error {
	s.closing.Do(s.commits.stop)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("filestore: closing: %w", err)
	}
	return nil
}

// Len returns the number of unfinished (pending or in-flight) deliveries.
func (s *Store) Len() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = unfinished(tx)
		return nil
	})
	return n, s.wrap(err)
}

// wrap gives bbolt's errors the package's prefix, and ErrClosed its meaning.
func (s *Store) wrap(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrClosed), errors.Is(err, ErrCorrupt):
		return err
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("filestore: %w", err)
}

type buckets struct {
	deliveries, attempts, due, heads, leases, meta, quarantine *bolt.Bucket
}

func bucketsOf(tx *bolt.Tx) buckets {
	return buckets{
		deliveries: tx.Bucket(bucketDeliveries),
		attempts:   tx.Bucket(bucketAttempts),
		due:        tx.Bucket(bucketDue),
		heads:      tx.Bucket(bucketHeads),
		leases:     tx.Bucket(bucketLeases),
		meta:       tx.Bucket(bucketMeta),
		quarantine: tx.Bucket(bucketQuarantine),
	}
}

func unfinished(tx *bolt.Tx) int { return unfinishedIn(tx.Bucket(bucketMeta)) }

func unfinishedIn(meta *bolt.Bucket) int {
	v := meta.Get(keyUnfinished)
	if len(v) != 8 {
		return 0
	}
	return int(binary.BigEndian.Uint64(v))
}

func (b buckets) setUnfinished(n int) error {
	return b.meta.Put(keyUnfinished, binary.BigEndian.AppendUint64(nil, uint64(max(n, 0))))
}

// appendLen16 appends s with its 16-bit length, so a key prefix names exactly one s.
func appendLen16(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(s)))
	return append(buf, s...)
}

// dueKey is the delivery's key in its endpoint's queue of pending deliveries.
func dueKey(endpointID string, at time.Time, id string) []byte {
	k := make([]byte, 0, 2+len(endpointID)+timeKeyLen+len(id))
	return append(appendTimeKey(appendLen16(k, endpointID), at), id...)
}

func headKey(at []byte, endpointID string) []byte {
	return append(append(make([]byte, 0, timeKeyLen+len(endpointID)), at...), endpointID...)
}

func leaseKey(at time.Time, id string) []byte {
	return append(appendTimeKey(make([]byte, 0, timeKeyLen+len(id)), at), id...)
}

func attemptKey(deliveryID string, number int) []byte {
	return binary.BigEndian.AppendUint32(appendLen16(make([]byte, 0, 6+len(deliveryID)), deliveryID), uint32(number))
}

// dueInsert queues a pending delivery under its endpoint and keeps the endpoint's head
// (its earliest due time, in the heads bucket) current.
func (b buckets) dueInsert(endpointID string, at time.Time, id string) error {
	key := dueKey(endpointID, at, id)
	prefix := key[:2+len(endpointID)]
	k, _ := b.due.Cursor().Seek(prefix)
	if k != nil && bytes.HasPrefix(k, prefix) {
		if bytes.Compare(key, k) > 0 {
			return b.due.Put(key, nil)
		}
		if err := b.heads.Delete(headKey(k[len(prefix):len(prefix)+timeKeyLen], endpointID)); err != nil {
			return err
		}
	}
	if err := b.heads.Put(headKey(key[len(prefix):len(prefix)+timeKeyLen], endpointID), nil); err != nil {
		return err
	}
	return b.due.Put(key, nil)
}

// dueRemove takes a delivery out of its endpoint's queue, moving the endpoint's head on
// when it was the first.
func (b buckets) dueRemove(endpointID string, key []byte) error {
	prefix := key[:2+len(endpointID)]
	first, _ := b.due.Cursor().Seek(prefix)
	wasHead := bytes.Equal(first, key)
	if err := b.due.Delete(key); err != nil || !wasHead {
		return err
	}
	if err := b.heads.Delete(headKey(key[len(prefix):len(prefix)+timeKeyLen], endpointID)); err != nil {
		return err
	}
	next, _ := b.due.Cursor().Seek(prefix)
	if next == nil || !bytes.HasPrefix(next, prefix) {
		return nil
	}
	return b.heads.Put(headKey(next[len(prefix):len(prefix)+timeKeyLen], endpointID), nil)
}

func (b buckets) putDelivery(d *storedDelivery) error {
	return b.deliveries.Put([]byte(d.ID), encodeDelivery(make([]byte, 0, deliverySize(&d.Delivery)), d))
}

func (b buckets) getDelivery(id string, withBody bool) (storedDelivery, bool, error) {
	v := b.deliveries.Get([]byte(id))
	if v == nil {
		return storedDelivery{}, false, nil
	}
	d, err := decodeDelivery([]byte(id), v, withBody)
	return d, true, err
}

// quarantineRecord fails a delivery whose record cannot be decoded, found by a claim at now:
// its bytes move to the quarantine bucket, for inspection, and a record of what is known
// (its ID and endpoint, from the index that led here) takes their place, failed with
// the reason, so that everything else keeps flowing.
func (b buckets) quarantineRecord(id, endpointID string, now time.Time, cause error) error {
	if err := b.quarantine.Put([]byte(id), slices.Clone(b.deliveries.Get([]byte(id)))); err != nil {
		return err
	}
	d := storedDelivery{Delivery: webhook.Delivery{ID: id, EndpointID: endpointID, State: webhook.StateFailed,
		CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now,
		LastError: cause.Error() + "; nothing was sent, and its bytes are kept (filestore.Store.Quarantined)"}}
	if err := b.putDelivery(&d); err != nil {
		return err
	}
	return b.setUnfinished(unfinishedIn(b.meta) - 1)
}

func checkID(what, id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("filestore: %s %q must be 1 to %d bytes", what, id, maxIDLen)
	}
	return nil
}

// Enqueue implements webhook.Store. It returns once the deliveries are committed and
// fsynced; concurrent calls share commits (see WithGroupCommit). A delivery whose ID is
// already stored fails the whole call. ctx is checked before the write, which is not
// interrupted once it has started.
func (s *Store) Enqueue(ctx context.Context, ds []webhook.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	type prepared struct {
		id, value []byte
	}
	recs := make([]prepared, len(ds))
	for i := range ds {
		if err := checkID("delivery ID", ds[i].ID); err != nil {
			return err
		}
		if err := checkID("endpoint ID", ds[i].EndpointID); err != nil {
			return err
		}
		d := storedDelivery{Delivery: ds[i]}
		d.State = webhook.StatePending
		recs[i] = prepared{id: []byte(d.ID), value: encodeDelivery(make([]byte, 0, deliverySize(&d.Delivery)), &d)}
	}
	if len(ds) > 1 {
		seen := make(map[string]bool, len(ds))
		for i := range ds {
			if seen[ds[i].ID] {
				return fmt.Errorf("filestore: %w: %q appears twice in one Enqueue", store.ErrDuplicateDelivery, ds[i].ID)
			}
			seen[ds[i].ID] = true
		}
	}
	// The function may run more than once (when another write in its group fails, the
	// rest are retried); it writes only inside tx and resets res, so a re-run is
	// harmless. Refusals set res and write nothing, so they do not fail the group.
	var res error
	err := s.commits.write(func(tx *bolt.Tx) error {
		res = nil
		b := bucketsOf(tx)
		n := unfinished(tx)
		if s.capacity > 0 && n+len(ds) > s.capacity {
			res = fmt.Errorf("%w: the file store holds %d unfinished deliveries (capacity %d); raise it with filestore.WithCapacity", webhook.ErrQueueFull, n, s.capacity)
			return nil
		}
		for i := range recs {
			if b.deliveries.Get(recs[i].id) != nil {
				res = fmt.Errorf("filestore: %w: %q is already stored", store.ErrDuplicateDelivery, ds[i].ID)
				return nil
			}
		}
		for i := range recs {
			if err := b.deliveries.Put(recs[i].id, recs[i].value); err != nil {
				return err
			}
			if err := b.dueInsert(ds[i].EndpointID, ds[i].NextAttemptAt, ds[i].ID); err != nil {
				return err
			}
		}
		return b.setUnfinished(n + len(ds))
	})
	if err != nil {
		return s.wrap(err)
	}
	return res
}

// Claim implements webhook.Store: in one write transaction it takes expired leases first,
// in expiry order, then due pending deliveries in NextAttemptAt order, merging the
// endpoints' queues so that an excluded endpoint's backlog is skipped without being read.
//
// An ordered endpoint (ClaimParams.Ordered) gives out only its oldest unfinished
// delivery. Finding it costs a scan of that endpoint's whole pending queue (it is kept in
// due-time order, not ID order) when the endpoint comes up, and one scan of all leases per
// Claim in which any ordered endpoint comes up; claims without Ordered pay nothing.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]webhook.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	excluded := store.EndpointSet(p.ExcludeEndpoints)
	ordered := store.EndpointSet(p.Ordered)
	var taken map[string]int
	if p.MaxPerEndpoint > 0 {
		taken = make(map[string]int)
	}
	full := func(endpointID string) bool {
		return taken != nil && taken[endpointID] >= p.MaxPerEndpoint
	}
	now := appendTimeKey(nil, p.Now)
	var out []webhook.Delivery
	// Claims share commits with Enqueue and Record: a dispatcher claims after every
	// finished attempt, and a commit of its own each time would take the writer from them.
	// The function starts over from nothing, so a re-run is harmless.
	err := s.commits.write(func(tx *bolt.Tx) error {
		out = nil
		clear(taken)
		b := bucketsOf(tx)
		type pick struct {
			id, endpointID string
			lease          []byte // its key in leases, when taken over from an expired lease
			due            []byte // its key in due, when pending
		}
		var picks []pick
		take := func(pk pick) {
			picks = append(picks, pk)
			if taken != nil {
				taken[pk.endpointID]++
			}
		}
		c := b.leases.Cursor()
		for k, v := c.First(); k != nil && len(picks) < p.Limit; k, v = c.Next() {
			if bytes.Compare(k[:timeKeyLen], now) > 0 {
				break
			}
			ep := string(v)
			if excluded(ep) || full(ep) {
				continue
			}
			take(pick{id: string(k[timeKeyLen:]), endpointID: ep, lease: slices.Clone(k)})
		}

		// Merge the due endpoints' queues: the heads bucket lists each endpoint once, at
		// its earliest due time, so an endpoint's queue is opened only when its head comes
		// up, and an excluded endpoint costs one key however long its queue.
		var queues queueHeap
		var staleHeads [][]byte
		var leased map[string][]byte // ordered endpoints' lowest in-flight IDs, read once when needed
		hc, dc := b.heads.Cursor(), b.due.Cursor()
		hk, _ := hc.First()
		for len(picks) < p.Limit {
			if hk != nil && bytes.Compare(hk[:timeKeyLen], now) <= 0 &&
				(len(queues) == 0 || bytes.Compare(hk[:timeKeyLen], queues[0].at()) <= 0) {
				ep, head := string(hk[timeKeyLen:]), hk
				hk, _ = hc.Next()
				if excluded(ep) || full(ep) {
					continue
				}
				prefix := appendLen16(nil, ep)
				k, _ := dc.Seek(prefix)
				if k == nil || !bytes.HasPrefix(k, prefix) {
					// A head without a queue (a damaged index): drop it, claim the rest.
					staleHeads = append(staleHeads, slices.Clone(head))
					continue
				}
				if ordered(ep) {
					if leased == nil {
						leased = oldestLeases(b.leases, ordered)
					}
					head := orderedHead(dc, k, len(prefix))
					if low, ok := leased[ep]; ok && bytes.Compare(low, head[len(prefix)+timeKeyLen:]) < 0 {
						continue // an older delivery is in flight
					}
					if bytes.Compare(head[len(prefix):len(prefix)+timeKeyLen], now) > 0 {
						continue // the oldest is waiting for a retry
					}
					heap.Push(&queues, queueHead{endpointID: ep, key: head, prefix: len(prefix), only: true})
					continue
				}
				heap.Push(&queues, queueHead{endpointID: ep, key: slices.Clone(k), prefix: len(prefix)})
				continue
			}
			if len(queues) == 0 {
				break
			}
			q := heap.Pop(&queues).(queueHead)
			take(pick{id: string(q.key[q.prefix+timeKeyLen:]), endpointID: q.endpointID, due: q.key})
			if q.only || full(q.endpointID) {
				continue
			}
			dc.Seek(q.key)
			k, _ := dc.Next()
			if k != nil && bytes.HasPrefix(k, q.key[:q.prefix]) && bytes.Compare(k[q.prefix:q.prefix+timeKeyLen], now) <= 0 {
				heap.Push(&queues, queueHead{endpointID: q.endpointID, key: slices.Clone(k), prefix: q.prefix})
			}
		}

		// Cursors are done; now the writes.
		for _, k := range staleHeads {
			if err := b.heads.Delete(k); err != nil {
				return err
			}
		}
		for _, pk := range picks {
			var err error
			if pk.lease != nil {
				err = b.leases.Delete(pk.lease)
			} else {
				err = b.dueRemove(pk.endpointID, pk.due)
			}
			if err != nil {
				return err
			}
		}
		out = make([]webhook.Delivery, 0, len(picks))
		for _, pk := range picks {
			d, ok, err := b.getDelivery(pk.id, true)
			if errors.Is(err, ErrCorrupt) {
				if err := b.quarantineRecord(pk.id, pk.endpointID, p.Now, err); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if !ok {
				continue // indexed but gone (a damaged index); the index entry is gone now too
			}
			d.State = webhook.StateInFlight
			d.LeaseOwner = p.Owner
			d.LeaseExpiresAt = p.LeaseUntil
			d.UpdatedAt = p.Now
			if err := b.putDelivery(&d); err != nil {
				return err
			}
			if err := b.leases.Put(leaseKey(p.LeaseUntil, d.ID), []byte(d.EndpointID)); err != nil {
				return err
			}
			out = append(out, d.Delivery)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// orderedHead returns the due key of the lowest delivery ID in the endpoint queue that
// first (the queue's first key, with an endpoint part of prefix bytes) starts. The queue is
// in due-time order, so this reads all of it. The cursor is left anywhere.
func orderedHead(dc *bolt.Cursor, first []byte, prefix int) []byte {
	head := slices.Clone(first)
	for k, _ := dc.Seek(first); k != nil && bytes.HasPrefix(k, first[:prefix]); k, _ = dc.Next() {
		if bytes.Compare(k[prefix+timeKeyLen:], head[prefix+timeKeyLen:]) < 0 {
			head = append(head[:0], k...)
		}
	}
	return head
}

// oldestLeases returns, for each ordered endpoint with deliveries in flight, the lowest
// of their IDs. It reads every lease.
func oldestLeases(leases *bolt.Bucket, ordered func(string) bool) map[string][]byte {
	out := make(map[string][]byte)
	c := leases.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		ep := string(v)
		if !ordered(ep) {
			continue
		}
		if low, ok := out[ep]; !ok || bytes.Compare(k[timeKeyLen:], low) < 0 {
			out[ep] = slices.Clone(k[timeKeyLen:])
		}
	}
	return out
}

// queueHead is the earliest unclaimed due delivery of one endpoint during a Claim.
type queueHead struct {
	endpointID string
	key        []byte // its due key
	prefix     int    // the length of the endpoint part of key
	only       bool   // an ordered endpoint's oldest delivery: nothing after it may go
}

func (q queueHead) at() []byte { return q.key[q.prefix : q.prefix+timeKeyLen] }

// queueHeap orders endpoint queues by their head's due time, then delivery ID.
type queueHeap []queueHead

func (h queueHeap) Len() int { return len(h) }
func (h queueHeap) Less(i, j int) bool {
	return bytes.Compare(h[i].key[h[i].prefix:], h[j].key[h[j].prefix:]) < 0
}
func (h queueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *queueHeap) Push(x any)   { *h = append(*h, x.(queueHead)) }
func (h *queueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Record implements webhook.Store. Concurrent calls share commits (see WithGroupCommit);
// it returns once the result is durable.
func (s *Store) Record(ctx context.Context, p store.RecordParams) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch p.State {
	case webhook.StatePending, webhook.StateSucceeded, webhook.StateFailed:
	default:
		return fmt.Errorf("%w: Record to state %q; want pending, succeeded or failed", webhook.ErrInvalidState, p.State)
	}
	var attempt []byte
	if p.Attempt != nil {
		attempt = encodeAttempt(p.Attempt)
	}
	var res error
	err := s.commits.write(func(tx *bolt.Tx) error {
		res = nil
		b := bucketsOf(tx)
		d, ok, err := b.getDelivery(p.DeliveryID, true)
		switch {
		case err != nil:
			return err
		case !ok:
			res = fmt.Errorf("%w: %s", webhook.ErrNotFound, p.DeliveryID)
			return nil
		case d.State != webhook.StateInFlight || d.LeaseOwner != p.Owner:
			res = fmt.Errorf("%w: %s", store.ErrLeaseLost, p.DeliveryID)
			return nil
		}
		if err := b.leases.Delete(leaseKey(d.LeaseExpiresAt, d.ID)); err != nil {
			return err
		}
		if p.Attempt != nil {
			d.logged++
			if err := b.attempts.Put(attemptKey(d.ID, d.logged), attempt); err != nil {
				return err
			}
		}
		d.Apply(p)
		if p.State == webhook.StatePending {
			if err := b.dueInsert(d.EndpointID, d.NextAttemptAt, d.ID); err != nil {
				return err
			}
		} else if err := b.setUnfinished(unfinished(tx) - 1); err != nil {
			return err
		}
		return b.putDelivery(&d)
	})
	if err != nil {
		return s.wrap(err)
	}
	return res
}

// Get implements webhook.Store.
func (s *Store) Get(ctx context.Context, id string) (webhook.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return webhook.Delivery{}, err
	}
	var d storedDelivery
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, found, err = bucketsOf(tx).getDelivery(id, true)
		return err
	})
	if err != nil {
		return webhook.Delivery{}, s.wrap(err)
	}
	if !found {
		return webhook.Delivery{}, fmt.Errorf("%w: %s", webhook.ErrNotFound, id)
	}
	return d.Delivery, nil
}

// List implements webhook.Store. It reads deliveries in ID order from the cursor, so a
// page costs what it skips: filters on a large file are answered by scanning.
func (s *Store) List(ctx context.Context, p webhook.ListParams) (webhook.ListResult, error) {
	if err := ctx.Err(); err != nil {
		return webhook.ListResult{}, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = webhook.DefaultListLimit
	}
	var res webhook.ListResult
	err := s.db.View(func(tx *bolt.Tx) error {
		res = webhook.ListResult{}
		c := tx.Bucket(bucketDeliveries).Cursor()
		var k, v []byte
		if p.Cursor == "" {
			k, v = c.First()
		} else {
			k, v = c.Seek([]byte(p.Cursor))
		}
		for ; k != nil; k, v = c.Next() {
			d, err := decodeDelivery(k, v, false)
			if err != nil {
				continue // undecodable: quarantined when claimed, see Quarantined
			}
			if !store.ListMatches(p, &d.Delivery) {
				continue
			}
			if len(res.Deliveries) == limit {
				res.Next = res.Deliveries[limit-1].ID
				return nil
			}
			if d, err = decodeDelivery(k, v, true); err != nil {
				continue
			}
			res.Deliveries = append(res.Deliveries, d.Delivery)
		}
		return nil
	})
	if err != nil {
		return webhook.ListResult{}, s.wrap(err)
	}
	return res, nil
}

// Quarantined returns the bytes of every delivery record that could not be decoded, by
// delivery ID. A claim that meets such a record fails the delivery with the reason (Get
// and List show it, failed) and keeps its bytes here, so one damaged record never stops
// the others; it cannot be requeued. Listing, RetryFailed and Prune skip records they
// cannot decode.
func (s *Store) Quarantined(ctx context.Context) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketQuarantine).ForEach(func(k, v []byte) error {
			out[string(k)] = slices.Clone(v)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// Attempts implements webhook.Store.
func (s *Store) Attempts(ctx context.Context, deliveryID string) ([]webhook.Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []webhook.Attempt
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		out = nil
		b := bucketsOf(tx)
		if found = b.deliveries.Get([]byte(deliveryID)) != nil; !found {
			return nil
		}
		prefix := appendLen16(nil, deliveryID)
		c := b.attempts.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			a, err := decodeAttempt(deliveryID, int(binary.BigEndian.Uint32(k[len(prefix):])), v)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", webhook.ErrNotFound, deliveryID)
	}
	return out, nil
}

// Requeue implements webhook.Store. Requeueing by endpoint scans every delivery.
func (s *Store) Requeue(ctx context.Context, p store.RequeueParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	var res error
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		var ids []string
		if len(p.IDs) > 0 {
			seen := make(map[string]bool, len(p.IDs))
			for _, id := range p.IDs {
				if seen[id] {
					continue
				}
				seen[id] = true
				d, ok, err := b.getDelivery(id, false)
				switch {
				case err != nil:
					return err
				case !ok:
					res = fmt.Errorf("%w: %s", webhook.ErrNotFound, id)
					return errRollback
				case b.quarantine.Get([]byte(id)) != nil:
					res = fmt.Errorf("%w: %s: its record was damaged and cannot be sent again (its bytes are kept: Store.Quarantined)", webhook.ErrInvalidState, id)
					return errRollback
				case !d.State.Finished():
					res = fmt.Errorf("%w: %s is %s; only succeeded or failed deliveries can be requeued", webhook.ErrInvalidState, id, d.State)
					return errRollback
				}
				ids = append(ids, id)
			}
		} else {
			c := b.deliveries.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				d, err := decodeDelivery(k, v, false)
				if err != nil || b.quarantine.Get(k) != nil {
					continue // nothing to send again
				}
				if d.State == webhook.StateFailed && d.EndpointID == p.EndpointID && !d.CreatedAt.Before(p.Since) {
					ids = append(ids, d.ID)
				}
			}
		}
		for _, id := range ids {
			d, _, err := b.getDelivery(id, true)
			if err != nil {
				return err
			}
			d.Requeue(p.Now)
			if err := b.putDelivery(&d); err != nil {
				return err
			}
			if err := b.dueInsert(d.EndpointID, d.NextAttemptAt, d.ID); err != nil {
				return err
			}
		}
		n = len(ids)
		return b.setUnfinished(unfinished(tx) + n)
	})
	if res != nil {
		return 0, res
	}
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// NextDue implements webhook.Store.
func (s *Store) NextDue(ctx context.Context, exclude []string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	excluded := store.EndpointSet(exclude)
	var next time.Time
	err := s.db.View(func(tx *bolt.Tx) error {
		next = time.Time{}
		b := bucketsOf(tx)
		c := b.leases.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !excluded(string(v)) {
				next = timeFromKey(k)
				break
			}
		}
		c = b.heads.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if !excluded(string(k[timeKeyLen:])) {
				if t := timeFromKey(k); next.IsZero() || t.Before(next) {
					next = t
				}
				break
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, s.wrap(err)
	}
	return next, nil
}

// Prune implements webhook.Store. It scans every delivery.
func (s *Store) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if p.SucceededBefore.IsZero() && p.FailedBefore.IsZero() {
		return 0, nil
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := bucketsOf(tx)
		var doomed []storedDelivery
		c := b.deliveries.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			d, err := decodeDelivery(k, v, false)
			if err != nil {
				continue // kept for inspection
			}
			if store.PruneMatches(p, &d.Delivery) {
				doomed = append(doomed, d)
			}
		}
		for _, d := range doomed {
			if err := b.deliveries.Delete([]byte(d.ID)); err != nil {
				return err
			}
			for i := 1; i <= d.logged; i++ {
				if err := b.attempts.Delete(attemptKey(d.ID, i)); err != nil {
					return err
				}
			}
		}
		n = len(doomed)
		return nil
	})
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}
