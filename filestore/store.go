package filestore

import (
	"bytes"
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
