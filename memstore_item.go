package webhook

import "time"

// memItem is one delivery as the store keeps it: compact, with its times as Unix
// nanoseconds and the fields many deliveries share (endpoint, event type, version) in one
// interned memMeta, so that a backlog costs little heap and few pointers for the host
// process's collector to follow.
type memItem struct {
	ids                                      string // the delivery ID, then the event ID
	idLen                                    int32
	body                                     []byte
	meta                                     *memMeta
	lastError                                string
	owner                                    string
	attempts                                 []Attempt
	created, queued, next, updated, leaseExp int64
	count, lastStatus                        int32
	state                                    State
	index                                    int32  // in its endpoint's queue while pending, in leases while in flight
	finished                                 uint32 // bumped at each success, to tell stale succeeded entries
}

// memMeta is what the deliveries of one endpoint, event type and version share.
type memMeta struct {
	endpointID, eventType, version string
	refs                           int
}

type metaKey struct{ endpointID, eventType, version string }

func (it *memItem) id() string         { return it.ids[:it.idLen] }
func (it *memItem) endpointID() string { return it.meta.endpointID }

// delivery returns the item as a Delivery.
func (it *memItem) delivery() Delivery {
	return Delivery{ID: it.ids[:it.idLen], EventID: it.ids[it.idLen:], EventType: it.meta.eventType,
		EndpointID: it.meta.endpointID, Version: it.meta.version, Body: it.body, State: it.state,
		Attempts: int(it.count), CreatedAt: fromNanos(it.created), QueuedAt: fromNanos(it.queued),
		NextAttemptAt: fromNanos(it.next), UpdatedAt: fromNanos(it.updated), LastStatus: int(it.lastStatus),
		LastError: it.lastError, LeaseOwner: it.owner, LeaseExpiresAt: fromNanos(it.leaseExp)}
}

// set makes the item hold d, but for its identity (IDs, body, meta).
func (it *memItem) set(d *Delivery) {
	it.state, it.count, it.lastStatus, it.lastError, it.owner = d.State, int32(d.Attempts), int32(d.LastStatus), d.LastError, d.LeaseOwner
	it.created, it.queued, it.next, it.updated, it.leaseExp = nanos(d.CreatedAt), nanos(d.QueuedAt),
		nanos(d.NextAttemptAt), nanos(d.UpdatedAt), nanos(d.LeaseExpiresAt)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

type succeededEntry struct {
	it  *memItem
	seq uint32
}
