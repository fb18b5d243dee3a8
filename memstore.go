package webhook

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hooksmith/webhook/store"
)

// DefaultQueueCapacity is how many unfinished (pending or in-flight) deliveries the
// default in-memory store holds before Send blocks or fails with ErrQueueFull.
const DefaultQueueCapacity = 100_000

// errMemoryFull says how to make room.
var errMemoryFull = fmt.Errorf("%w: the memory store is at its capacity of unfinished deliveries; raise it with WithQueueCapacity or use a durable store", ErrQueueFull)

// MemoryStore is the default Store: it keeps deliveries in this process's memory, so they
// are lost when the process exits. Each endpoint's pending deliveries wait in a heap by
// due time, and the endpoints in a heap by their earliest, so a claim takes the earliest
// due deliveries in O(log n) each and an endpoint left out of a claim (disabled, at its
// limit) holds no other endpoint back. In-flight deliveries wait in a heap by lease
// expiry. A MemoryStore is safe for concurrent use and may be shared by several Senders
// of one process.
type MemoryStore struct {
	mu         sync.Mutex
	capacity   int // unfinished deliveries at most; < 0 unbounded
	unfinished int
	items      map[string]*memItem
	queues     map[string]*memQueue // endpoints with pending deliveries
	ready      queueHeap            // those queues, by their earliest due delivery
	leases     leaseHeap            // in-flight deliveries, by lease expiry
	// succeeded lists succeeded deliveries in the order they finished, so that the
	// oldest go past capacity. An entry whose item has since changed is skipped.
	succeeded     []succeededEntry
	succeededLive int
	taken         map[string]int // a claim's deliveries per endpoint, kept from one claim to the next
	metas         map[metaKey]*memMeta
}

// NewMemoryStore returns an empty in-memory store that holds at most capacity unfinished
// deliveries. Zero means DefaultQueueCapacity; a negative capacity means unbounded.
//
// It also keeps at most capacity succeeded deliveries, dropping the oldest first, on top
// of the Sender's retention (WithRetention): a day of successes at a thousand a second
// would otherwise be tens of gigabytes. Failed deliveries (dead letters) are kept until
// their retention ends. A negative capacity keeps every succeeded delivery until its
// retention ends too.
func NewMemoryStore(capacity int) *MemoryStore {
	if capacity == 0 {
		capacity = DefaultQueueCapacity
	}
	return &MemoryStore{capacity: capacity, items: map[string]*memItem{}, queues: map[string]*memQueue{},
		taken: map[string]int{}, metas: map[metaKey]*memMeta{}}
}

// RecordsInline implements store.InlineRecorder: Record never waits on I/O.
func (m *MemoryStore) RecordsInline() bool { return true }

// Len returns the number of unfinished (pending or in-flight) deliveries.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unfinished
}

// Enqueue implements Store. The store keeps each Body as it is given, unchanged: callers
// must not modify one once enqueued.
func (m *MemoryStore) Enqueue(ctx context.Context, ds []Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.capacity > 0 && m.unfinished+len(ds) > m.capacity {
		return errMemoryFull
	}
	for i := range ds {
		if _, dup := m.items[ds[i].ID]; dup || slices.ContainsFunc(ds[:i], func(d Delivery) bool { return d.ID == ds[i].ID }) {
			return fmt.Errorf("%w: %q", store.ErrDuplicateDelivery, ds[i].ID)
		}
	}
	for i := range ds {
		d := &ds[i]
		it := &memItem{ids: d.ID + d.EventID, idLen: int32(len(d.ID)), body: d.Body, meta: m.intern(d)}
		it.set(d)
		it.state, it.owner, it.leaseExp = StatePending, "", 0
		m.items[d.ID] = it
		m.push(it)
	}
	m.unfinished += len(ds)
	return nil
}

// intern returns the meta of d's endpoint, event type and version, shared by every
// delivery that has the same.
func (m *MemoryStore) intern(d *Delivery) *memMeta {
	k := metaKey{d.EndpointID, d.EventType, d.Version}
	mt := m.metas[k]
	if mt == nil {
		mt = &memMeta{endpointID: d.EndpointID, eventType: d.EventType, version: d.Version}
		m.metas[k] = mt
	}
	mt.refs++
	return mt
}

// drop forgets an item.
func (m *MemoryStore) drop(it *memItem) {
	delete(m.items, it.id())
	if it.meta.refs--; it.meta.refs == 0 {
		delete(m.metas, metaKey{it.meta.endpointID, it.meta.eventType, it.meta.version})
	}
}

// push queues a pending item under its endpoint.
func (m *MemoryStore) push(it *memItem) {
	if q := m.queues[it.endpointID()]; q != nil {
		heap.Push(q, it)
		heap.Fix(&m.ready, q.index)
		return
	}
	q := &memQueue{endpointID: it.endpointID()}
	m.queues[q.endpointID] = q
	heap.Push(q, it)
	heap.Push(&m.ready, q)
}

// lease takes an item out to owner until the given time.
func (m *MemoryStore) lease(it *memItem, p *store.ClaimParams) Delivery {
	it.state, it.owner, it.leaseExp, it.updated = StateInFlight, p.Owner, nanos(p.LeaseUntil), nanos(p.Now)
	heap.Push(&m.leases, it)
	return it.delivery()
}

// Claim implements Store.
func (m *MemoryStore) Claim(ctx context.Context, p store.ClaimParams) ([]Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	excluded, ordered := store.EndpointSet(p.ExcludeEndpoints), store.EndpointSet(p.Ordered)
	now := nanos(p.Now)
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.taken)
	full := func(endpointID string) bool { return p.MaxPerEndpoint > 0 && m.taken[endpointID] >= p.MaxPerEndpoint }
	expired := func() bool { return len(m.leases) > 0 && m.leases[0].leaseExp <= now }
	// Sized once: at most the expired leases and the pending deliveries.
	room := m.unfinished - len(m.leases)
	if expired() {
		room = m.unfinished
	}
	out := make([]Delivery, 0, min(p.Limit, room))
	take := func(it *memItem) {
		m.taken[it.endpointID()]++
		out = append(out, m.lease(it, &p))
	}

	// Expired leases first: their deliveries were due before anything pending now.
	var held []*memItem
	for len(out) < p.Limit && expired() {
		it := heap.Pop(&m.leases).(*memItem)
		if ep := it.endpointID(); excluded(ep) || full(ep) || (ordered(ep) && !m.oldestUnfinished(it)) {
			held = append(held, it)
			continue
		}
		take(it)
	}
	for _, it := range held {
		heap.Push(&m.leases, it)
	}

	// Then the pending deliveries, earliest due first across endpoints. An endpoint that
	// may give nothing more is set aside for the rest of the claim.
	var aside []*memQueue
	for len(out) < p.Limit && len(m.ready) > 0 {
		q := m.ready[0]
		if q.items[0].next > now {
			break
		}
		switch {
		case excluded(q.endpointID) || full(q.endpointID):
			aside = append(aside, heap.Pop(&m.ready).(*memQueue))
		case ordered(q.endpointID):
			// Only the endpoint's oldest unfinished delivery, and only if it is due.
			aside = append(aside, heap.Pop(&m.ready).(*memQueue))
			if it := q.oldest(); it.next <= now && m.oldestUnfinished(it) {
				heap.Remove(q, int(it.index))
				take(it)
			}
		default:
			take(heap.Pop(q).(*memItem))
			if len(q.items) == 0 {
				heap.Pop(&m.ready)
				delete(m.queues, q.endpointID)
			} else {
				heap.Fix(&m.ready, 0)
			}
		}
	}
	for _, q := range aside {
		if len(q.items) == 0 {
			delete(m.queues, q.endpointID)
			continue
		}
		heap.Push(&m.ready, q)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// oldestUnfinished reports whether no in-flight delivery of it's endpoint is older (has
// a lower ID) than it: for an ordered endpoint, only the oldest may go. It scans the
// leases, the documented cost of strict ordering.
func (m *MemoryStore) oldestUnfinished(it *memItem) bool {
	for _, l := range m.leases {
		if l != it && l.meta.endpointID == it.meta.endpointID && l.id() < it.id() {
			return false
		}
	}
	return true
}

// Record implements Store.
func (m *MemoryStore) Record(ctx context.Context, p store.RecordParams) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch p.State {
	case StatePending, StateSucceeded, StateFailed:
	default:
		return fmt.Errorf("%w: Record to state %q; want pending, succeeded or failed", ErrInvalidState, p.State)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it := m.items[p.DeliveryID]
	switch {
	case it == nil:
		return fmt.Errorf("%w: %s", ErrNotFound, p.DeliveryID)
	case it.state != StateInFlight || it.owner != p.Owner:
		return fmt.Errorf("%w: %s", store.ErrLeaseLost, p.DeliveryID)
	}
	heap.Remove(&m.leases, int(it.index))
	if p.Attempt != nil {
		a := *p.Attempt
		a.DeliveryID, a.Number = it.id(), len(it.attempts)+1
		it.attempts = append(it.attempts, a)
	}
	d := it.delivery()
	d.Apply(p)
	it.set(&d)
	switch p.State {
	case StatePending:
		m.push(it)
	case StateSucceeded:
		m.unfinished--
		m.noteSucceeded(it)
	case StateFailed:
		m.unfinished--
	}
	return nil
}

// noteSucceeded lists a delivery that succeeded, dropping the oldest succeeded ones past
// capacity.
func (m *MemoryStore) noteSucceeded(it *memItem) {
	it.finished++
	m.succeededLive++
	if m.capacity < 0 {
		return // every succeeded delivery stays until its retention ends
	}
	m.succeeded = append(m.succeeded, succeededEntry{it, it.finished})
	if len(m.succeeded) > 2*m.succeededLive+1024 {
		// Mostly entries of deliveries since pruned or requeued: keep the live ones.
		m.succeeded = slices.DeleteFunc(m.succeeded, func(e succeededEntry) bool { return !m.live(e) })
	}
	for m.succeededLive > m.capacity {
		e := m.succeeded[0]
		m.succeeded[0] = succeededEntry{}
		m.succeeded = m.succeeded[1:]
		if m.live(e) {
			m.drop(e.it)
			m.succeededLive--
		}
	}
}

// live reports whether a succeeded entry still stands for its item's success.
func (m *MemoryStore) live(e succeededEntry) bool {
	return e.it.state == StateSucceeded && e.it.finished == e.seq && m.items[e.it.id()] == e.it
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, id string) (Delivery, error) {
	if err := ctx.Err(); err != nil {
		return Delivery{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if it := m.items[id]; it != nil {
		return it.delivery(), nil
	}
	return Delivery{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// List implements Store. It scans every delivery: the memory store is meant for a
// process's own recent deliveries, not for archives.
func (m *MemoryStore) List(ctx context.Context, p ListParams) (ListResult, error) {
	if err := ctx.Err(); err != nil {
		return ListResult{}, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	m.mu.Lock()
	var ds []Delivery
	for _, it := range m.items {
		if d := it.delivery(); store.ListMatches(p, &d) {
			ds = append(ds, d)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(ds, func(a, b Delivery) int { return cmp.Compare(a.ID, b.ID) })
	var res ListResult
	if len(ds) > limit {
		ds = ds[:limit]
		res.Next = ds[limit-1].ID
	}
	res.Deliveries = ds
	return res, nil
}

// Attempts implements Store.
func (m *MemoryStore) Attempts(ctx context.Context, id string) ([]Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	it := m.items[id]
	if it == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return slices.Clone(it.attempts), nil
}

// Requeue implements Store.
func (m *MemoryStore) Requeue(ctx context.Context, p store.RequeueParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var its []*memItem
	if len(p.IDs) > 0 {
		seen := map[string]bool{}
		for _, id := range p.IDs {
			it := m.items[id]
			switch {
			case it == nil:
				return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
			case !it.state.Finished():
				return 0, fmt.Errorf("%w: %s is %s; only succeeded or failed deliveries can be requeued", ErrInvalidState, id, it.state)
			case !seen[id]:
				seen[id] = true
				its = append(its, it)
			}
		}
	} else {
		since := p.Since
		for _, it := range m.items {
			if it.state == StateFailed && it.meta.endpointID == p.EndpointID && !fromNanos(it.created).Before(since) {
				its = append(its, it)
			}
		}
	}
	for _, it := range its {
		if it.state == StateSucceeded {
			m.succeededLive--
		}
		d := it.delivery()
		d.Requeue(p.Now)
		it.set(&d)
		m.push(it)
	}
	m.unfinished += len(its)
	return len(its), nil
}

// NextDue implements Store.
func (m *MemoryStore) NextDue(ctx context.Context, exclude []string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	excluded := store.EndpointSet(exclude)
	m.mu.Lock()
	defer m.mu.Unlock()
	var next int64
	earlier := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	for _, it := range m.leases {
		if !excluded(it.meta.endpointID) {
			earlier(it.leaseExp)
		}
	}
	for _, q := range m.ready {
		if !excluded(q.endpointID) {
			earlier(q.items[0].next)
		}
	}
	return fromNanos(next), nil
}

// Prune implements Store.
func (m *MemoryStore) Prune(ctx context.Context, p store.PruneParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, it := range m.items {
		if !it.state.Finished() {
			continue
		}
		if d := it.delivery(); store.PruneMatches(p, &d) {
			if it.state == StateSucceeded {
				m.succeededLive--
			}
			m.drop(it)
			n++
		}
	}
	return n, nil
}
