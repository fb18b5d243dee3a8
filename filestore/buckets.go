package filestore

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"

	"github.com/hooksmith/webhook"
	bolt "go.etcd.io/bbolt"
)

// The file's buckets, and the keys of the meta bucket.
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
