package filestore

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	bolt "go.etcd.io/bbolt"
)

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
