package webhook

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultQueueCapacity is how many unfinished (pending or in-flight) deliveries the
// default in-memory store holds before Send blocks or fails with ErrQueueFull.
const DefaultQueueCapacity = 100_000

// errMemoryFull is built once: a full queue is a hot path for callers waiting for room.
var errMemoryFull = fmt.Errorf("%w: the memory store is at its capacity of unfinished deliveries; raise it with WithQueueCapacity or use a durable store", ErrQueueFull)

// MemoryStore is the default Store: it keeps deliveries in this process's memory, so they
// are lost when the process exits. Due deliveries wait in per-endpoint queues ordered by
// NextAttemptAt (see dueQueue), so a claim costs O(1) for deliveries stored in that order
// (a backlog of Sends) and O(log n) for the others, and an endpoint excluded from claims
// (disabled, or at its concurrency limit) does not make others wait behind its backlog.
// A MemoryStore is safe for concurrent use and may be shared by several Senders.
type MemoryStore struct {
	// mu guards the heaps, the leases and every item's fields once the item is
	// absorbed. Send does not take it: new items wait in intake (in shards with locks
	// of their own) until the next Claim or NextDue absorbs them, so callers of Send
	// contend only for a short append and an ID shard.
	mu         sync.Mutex
	capacity   int
	unfinished atomic.Int64
	byID       idIndex
	intake     [16]intakeShard
	// testHookAbsorbed, if set, is called by absorb once it has indexed each shard's
	// items, with m.mu held.
	testHookAbsorbed func(shard int)
	absorbing        []*memItem // absorb's batch, kept from one absorb to the next
	// intakeFresh counts intake items not in byID yet (enqueueFresh); whatever looks
	// items up by ID absorbs them first.
	intakeFresh atomic.Int64
	queues      map[string]*epQueue // pending deliveries per endpoint
	ready       epHeap              // endpoint queues by their earliest NextAttemptAt
	// parked holds the queues of endpoints the last claims excluded, out of ready, so
	// that a claim does not pop and push back every excluded queue that is due first
	// (a hundred endpoints with open circuits made that a tenth of a Sender's CPU); each
	// claim returns those no longer excluded to ready.
	parked map[string]*epQueue
	leases leaseHeap // in-flight deliveries by lease expiry
	metaMu sync.RWMutex
	metas  map[itemMeta]*itemMeta // see intern
	// succeeded lists succeeded deliveries in the order they finished, from
	// succeeded[succHead] on, so the oldest can be dropped past capacity. An entry is
	// stale (and skipped) if its item was since requeued, pruned or finished again.
	succeeded []succeededEntry
	succHead  int
}

type succeededEntry struct {
	it      *memItem
	updated int64 // the item's updated time when it succeeded
}

// noteSucceeded records that it just succeeded and drops the oldest succeeded
// deliveries past capacity. The caller holds m.mu.
func (m *MemoryStore) noteSucceeded(it *memItem) {
	if m.capacity <= 0 {
		return
	}
	m.succeeded = append(m.succeeded, succeededEntry{it, it.updated})
	for len(m.succeeded)-m.succHead > m.capacity {
		e := m.succeeded[m.succHead]
		m.succeeded[m.succHead] = succeededEntry{}
		m.succHead++
		if e.it.state == codeSucceeded && e.it.updated == e.updated {
			m.byID.delIf(e.it.id, e.it)
		}
	}
	if m.succHead > len(m.succeeded)/2 && m.succHead > 64 {
		n := copy(m.succeeded, m.succeeded[m.succHead:])
		clear(m.succeeded[n:])
		m.succeeded, m.succHead = m.succeeded[:n], 0
	}
}

// memItem is a delivery as the memory store holds it, packed so that a backlog of a
// million pending deliveries costs little more than their bodies: times as Unix
// nanoseconds, the state as a byte, the endpoint, event type and version behind one
// pointer shared by every delivery alike, and what only an attempted or requeued
// delivery has (attempt log, last status and error, a QueuedAt of its own) in a part
// allocated when first needed. The ID is copied into the item when it fits (a generated
// one does), so the item and the body are all a pending delivery allocates (a collector
// marks two objects per delivery, not three) and Send's ID need not outlive the Send.
// 160 bytes with the ID; a Delivery value is 288. Other strings and the body are shared
// with the Delivery values handed in and out. An item must not be copied once set: its
// id may point into itself, so an ID handed out (in a Delivery) keeps its item alive,
// though not the body, which is an allocation of its own.
type memItem struct {
	id, eventID string
	meta        *itemMeta
	body        []byte
	created     int64 // Unix nanoseconds, 0 for the zero time
	next        int64
	updated     int64
	leaseExp    int64
	leaseOwner  string
	more        *itemMore // nil: never attempted, no error, queued when created
	idx         int32     // position in the lease heap or its queue's heap; -1 in its queue's run
	state       stateCode
	idBuf       [32]byte // id's bytes, if it fits
}

// itemMeta is what many deliveries share: interned by MemoryStore.intern.
type itemMeta struct{ endpointID, eventType, version string }

// itemMore is the part of a delivery that a fresh one lacks.
type itemMore struct {
	queued                int64
	nAttempts, lastStatus int32
	lastError             string
	attempts              []Attempt
}

// itemMoreFirst is an itemMore with room for its first attempt.
type itemMoreFirst struct {
	itemMore
	log [1]Attempt
}

// stateCode is a State in a byte.
type stateCode uint8

const (
	codePending stateCode = iota
	codeInFlight
	codeSucceeded
	codeFailed
	codeOther // a State the store does not know; kept as codeOther, read back as ""
)

var stateOfCode = [...]State{codePending: StatePending, codeInFlight: StateInFlight,
	codeSucceeded: StateSucceeded, codeFailed: StateFailed}

func codeOf(s State) stateCode {
	switch s {
	case StatePending:
		return codePending
	case StateInFlight:
		return codeInFlight
	case StateSucceeded:
		return codeSucceeded
	case StateFailed:
		return codeFailed
	}
	return codeOther
}

func (c stateCode) state() State {
	if int(c) < len(stateOfCode) {
		return stateOfCode[c]
	}
	return ""
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

// delivery returns the item as a Delivery.
func (it *memItem) delivery() Delivery {
	d := Delivery{
		ID: it.id, EventID: it.eventID, EventType: it.meta.eventType, EndpointID: it.meta.endpointID,
		Version: it.meta.version, Body: it.body, State: it.state.state(),
		CreatedAt: fromNanos(it.created), QueuedAt: fromNanos(it.created),
		NextAttemptAt: fromNanos(it.next), UpdatedAt: fromNanos(it.updated),
		LeaseOwner: it.leaseOwner, LeaseExpiresAt: fromNanos(it.leaseExp),
	}
	if x := it.more; x != nil {
		d.QueuedAt = fromNanos(x.queued)
		d.Attempts, d.LastStatus, d.LastError = int(x.nAttempts), int(x.lastStatus), x.lastError
	}
	return d
}

// set stores d's fields in the item, with meta interned by m.
func (it *memItem) set(m *MemoryStore, d *Delivery) {
	if it.meta == nil || it.meta.endpointID != d.EndpointID || it.meta.eventType != d.EventType || it.meta.version != d.Version {
		it.meta = m.intern(d.EndpointID, d.EventType, d.Version)
	}
	if it.id != d.ID {
		it.id = d.ID
		if len(d.ID) <= len(it.idBuf) && len(d.ID) > 0 {
			n := copy(it.idBuf[:], d.ID)
			it.id = unsafe.String(&it.idBuf[0], n)
		}
	}
	it.eventID, it.body, it.state = d.EventID, d.Body, codeOf(d.State)
	it.created, it.next, it.updated = nanos(d.CreatedAt), nanos(d.NextAttemptAt), nanos(d.UpdatedAt)
	it.leaseOwner, it.leaseExp = d.LeaseOwner, nanos(d.LeaseExpiresAt)
	queued := nanos(d.QueuedAt)
	if it.more == nil && d.Attempts == 0 && d.LastStatus == 0 && d.LastError == "" && queued == it.created {
		return
	}
	if it.more == nil {
		it.more = &itemMore{}
	}
	it.more.queued, it.more.nAttempts, it.more.lastStatus, it.more.lastError = queued, int32(d.Attempts), int32(d.LastStatus), d.LastError
}

// maxInterned bounds the intern table: past it the table starts afresh (items keep the
// metas they have), so endpoints and types that come and go cannot grow it forever.
const maxInterned = 1 << 16

// intern returns the shared itemMeta for the three strings.
func (m *MemoryStore) intern(endpointID, eventType, version string) *itemMeta {
	k := itemMeta{endpointID, eventType, version}
	m.metaMu.RLock()
	v := m.metas[k]
	m.metaMu.RUnlock()
	if v != nil {
		return v
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if v = m.metas[k]; v == nil {
		if len(m.metas) >= maxInterned {
			m.metas = make(map[itemMeta]*itemMeta)
		}
		v = new(itemMeta) // not &k, which would put every lookup's key on the heap
		*v = k
		m.metas[k] = v
	}
	return v
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
	m := &MemoryStore{capacity: capacity, queues: make(map[string]*epQueue), parked: make(map[string]*epQueue),
		metas: make(map[itemMeta]*itemMeta)}
	for i := range m.byID {
		m.byID[i].m = make(map[string]*memItem)
	}
	return m
}

// Len returns the number of unfinished (pending or in-flight) deliveries.
func (m *MemoryStore) Len() int { return int(m.unfinished.Load()) }

// absorb moves enqueued items into the endpoint queues, adding fresh ones to the ID
// index. The shards' items interleave in time, so they are sorted into due order first:
// each then joins the end of its queue's run instead of its heap. Every shard is cut
// before any item is indexed. Indexing half a million items of a backlog takes most of
// a second: when each shard was cut only after the shards before it were indexed, the
// last shard's cut came that much later than the first's, the first shard's items of
// that time came in the next absorb, behind this one's latest, and 37% of the bench's
// backlog went to the heap. The caller holds m.mu.
func (m *MemoryStore) absorb() {
	var cut [len(m.intake)][2][]*memItem // each shard's items and fresh
	for i := range m.intake {
		sh := &m.intake[i]
		sh.mu.Lock()
		cut[i] = [2][]*memItem{sh.items, sh.fresh}
		sh.items, sh.fresh = sh.spare[0], sh.spare[1]
		sh.mu.Unlock()
	}
	batch := m.absorbing
	for i := range m.intake {
		in, fresh := cut[i][0], cut[i][1]
		batch = append(batch, in...)
		for _, it := range fresh {
			if !m.byID.add(it.id, it) {
				// Only an ID guessed before its Send returned can get here (Enqueue
				// indexes fresh IDs before its own check). Such a delivery could be
				// neither looked up nor recorded, and would be claimed and sent again
				// after every lease; it is counted out instead.
				m.unfinished.Add(-1)
				continue
			}
			batch = append(batch, it)
		}
		if len(fresh) > 0 {
			m.intakeFresh.Add(-int64(len(fresh)))
		}
		m.intake[i].spare[0], m.intake[i].spare[1] = spareOf(in), spareOf(fresh)
		if m.testHookAbsorbed != nil {
			m.testHookAbsorbed(i)
		}
	}
	m.pushAll(batch)
	m.absorbing = spareOf(batch)
}

// spareOf empties a used list of items for reuse, or drops it if it grew past
// maxSpareIntake.
func spareOf(used []*memItem) []*memItem {
	clear(used) // the items are not kept alive by the array
	if cap(used) > maxSpareIntake {
		return nil
	}
	return used[:0]
}

// pushAll pushes items in due order. The caller holds m.mu.
func (m *MemoryStore) pushAll(items []*memItem) {
	if !slices.IsSortedFunc(items, dueCompare) {
		slices.SortFunc(items, dueCompare)
	}
	for _, it := range items {
		m.push(it)
	}
}

// dueCompare is dueBefore as a comparison.
func dueCompare(a, b *memItem) int {
	if c := cmp.Compare(a.next, b.next); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// absorbFresh absorbs if intake holds items the ID index does not know yet. The caller
// holds m.mu.
func (m *MemoryStore) absorbFresh() {
	if m.intakeFresh.Load() > 0 {
		m.absorb()
	}
}

// intakeShard holds items enqueued since the last absorb. Sixteen of them, each Enqueue
// appending to the one its first ID picks: with one lock, 64 callers of Send queued on
// each other often enough to show in Send's tail latency. The spare slices are the two
// absorb emptied last, reused so that appends do not grow new slices after every absorb;
// only absorb (under mu of the store) touches them.
type intakeShard struct {
	mu sync.Mutex
	// items were enqueued by Enqueue, fresh by enqueueFresh (not in the ID index yet).
	items, fresh []*memItem
	spare        [2][]*memItem // the emptied items and fresh of the last absorb
}

// maxSpareIntake bounds each spare slice an intake shard, and absorb, keeps (8 bytes an
// entry).
const maxSpareIntake = 4096

// idIndex maps delivery IDs to items, in shards with their own locks, so Send does not
// contend with the dispatcher and the workers for one map. 256 shards, not 16: with 64
// callers and 64 workers on a shard each, 16 made Sends wait on one another often enough
// to show in Send's p99.9 (about 0.8 ms against 0.3 ms with 256, in the bench's
// send-latency scenario); a shard costs a mutex and an empty map.
type idIndex [256]struct {
	mu sync.Mutex
	m  map[string]*memItem
}

func (x *idIndex) shard(id string) int {
	h := uint(0)
	for i := max(0, len(id)-4); i < len(id); i++ { // the random tail of a generated ID
		h = h*31 + uint(id[i])
	}
	return int(h % uint(len(x)))
}

func (x *idIndex) get(id string) *memItem {
	sh := &x[x.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[id]
}

// add stores it under id unless id is taken, and reports whether it did.
func (x *idIndex) add(id string, it *memItem) bool {
	sh := &x[x.shard(id)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, dup := sh.m[id]; dup {
		return false
	}
	sh.m[id] = it
	return true
}

func (x *idIndex) del(id string) {
	sh := &x[x.shard(id)]
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}

// delIf removes id if it maps to it.
func (x *idIndex) delIf(id string, it *memItem) {
	sh := &x[x.shard(id)]
	sh.mu.Lock()
	if sh.m[id] == it {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
}

// each calls fn for every item, a shard at a time; fn must not use the index.
func (x *idIndex) each(fn func(id string, it *memItem)) {
	for i := range x {
		sh := &x[i]
		sh.mu.Lock()
		for id, it := range sh.m {
			fn(id, it)
		}
		sh.mu.Unlock()
	}
}

// Enqueue implements Store.
func (m *MemoryStore) Enqueue(ctx context.Context, ds []Delivery) error {
	if m.intakeFresh.Load() > 0 {
		// Index what Sends put in intake first, so that the duplicate check sees every
		// ID already handed out.
		m.mu.Lock()
		m.absorb()
		m.mu.Unlock()
	}
	return m.enqueue(ctx, ds, false)
}

// enqueueFresh is Enqueue for deliveries whose IDs a Sender has just generated: unique
// in this process by construction (a process-wide counter under 79 random bits), so they
// skip the duplicate check, and the ID index learns them when the dispatcher's next
// claim absorbs them, not in Send. Inserting into the index in Send had put its map
// growth, a rehash of up to a thousand entries, into one Send in a hundred: with it
// deferred, Send's p99 in the bench's send-latency scenario fell by a quarter to a half.
// Every method that looks deliveries up absorbs first, so none is missed meanwhile.
func (m *MemoryStore) enqueueFresh(ctx context.Context, ds []Delivery) error {
	return m.enqueue(ctx, ds, true)
}

func (m *MemoryStore) enqueue(ctx context.Context, ds []Delivery, fresh bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	// Room first: a full store is where callers waiting for room spin, so a refusal
	// builds nothing, and when the count shows no room it does not even write the count
	// (an add and its undo are two writes to a line every Send and Record shares).
	n := int64(len(ds))
	if m.capacity > 0 && m.unfinished.Load()+n > int64(m.capacity) {
		return errMemoryFull
	}
	if total := m.unfinished.Add(n); m.capacity > 0 && total > int64(m.capacity) {
		m.unfinished.Add(-n)
		return errMemoryFull
	}
	// Items are built before taking the lock, which every Claim and Record also needs.
	items := make([]memItem, len(ds))
	for i := range ds {
		items[i].set(m, &ds[i])
		items[i].state = codePending
	}
	if !fresh {
		// Adding each ID refuses one already stored or already added from this batch;
		// the batch's earlier adds are then undone, so it is stored whole or not at all.
		for i := range items {
			if !m.byID.add(items[i].id, &items[i]) {
				for j := range i {
					m.byID.del(items[j].id)
				}
				m.unfinished.Add(-n)
				return fmt.Errorf("%w: the memory store already holds %q, or the batch repeats it", ErrDuplicateDelivery, items[i].id)
			}
		}
	}
	sh := &m.intake[m.byID.shard(items[0].id)%len(m.intake)]
	sh.mu.Lock()
	list := &sh.items
	if fresh {
		list = &sh.fresh
	}
	for i := range items {
		*list = append(*list, &items[i])
	}
	sh.mu.Unlock()
	if fresh {
		m.intakeFresh.Add(n)
	}
	return nil
}

// push puts a pending item into its endpoint's queue.
func (m *MemoryStore) push(it *memItem) {
	q := m.queues[it.meta.endpointID]
	if q == nil {
		q = &epQueue{id: it.meta.endpointID}
		m.queues[q.id] = q
		q.items.push(it)
		heap.Push(&m.ready, q)
		return
	}
	q.items.push(it)
	if !q.parked {
		heap.Fix(&m.ready, q.idx)
	}
}

// unpark returns parked queues whose endpoints are no longer excluded to ready. The
// caller holds m.mu.
func (m *MemoryStore) unpark(excluded func(string) bool) {
	for id, q := range m.parked {
		if !excluded(id) {
			delete(m.parked, id)
			q.parked = false
			heap.Push(&m.ready, q)
		}
	}
}

// Claim implements Store.
func (m *MemoryStore) Claim(ctx context.Context, p ClaimParams) ([]Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.Limit <= 0 {
		return nil, nil
	}
	excluded := EndpointSet(p.ExcludeEndpoints)
	var taken map[string]int // per endpoint, when MaxPerEndpoint caps the claim
	if p.MaxPerEndpoint > 0 && p.MaxPerEndpoint < p.Limit {
		taken = make(map[string]int)
	}
	ordered := EndpointSet(p.Ordered)
	full := func(endpointID string) bool {
		return taken != nil && taken[endpointID] >= p.MaxPerEndpoint
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorb()
	m.unpark(excluded)
	// Made at the first find, sized to what may be found: a Delivery is 288 bytes, a
	// claim for many free slots of an idle store finds a few, one of a busy store finds
	// its limit, and one whose due endpoints are all excluded finds none. d is already
	// leased, so the pending ones are those not leased plus d.
	var out []Delivery
	take := func(d Delivery) {
		if out == nil {
			out = make([]Delivery, 0, min(p.Limit, max(1, int(m.unfinished.Load())-len(m.leases)+1)))
		}
		out = append(out, d)
	}
	var aside []*memItem
	now := nanos(p.Now)
	for len(out) < p.Limit && len(m.leases) > 0 && m.leases[0].leaseExp <= now {
		it := heap.Pop(&m.leases).(*memItem)
		if ep := it.meta.endpointID; excluded(ep) || full(ep) {
			aside = append(aside, it)
			continue
		}
		take(m.lease(it, p))
		if taken != nil {
			taken[it.meta.endpointID]++
		}
	}
	for _, it := range aside {
		heap.Push(&m.leases, it)
	}
	var skipped []*epQueue
	for len(out) < p.Limit && len(m.ready) > 0 {
		q := m.ready[0]
		if q.items.first().next > now {
			break
		}
		if excluded(q.id) {
			heap.Pop(&m.ready)
			q.parked = true
			m.parked[q.id] = q
			continue
		}
		if full(q.id) {
			skipped = append(skipped, heap.Pop(&m.ready).(*epQueue))
			continue
		}
		if ordered(q.id) {
			// Only the endpoint's oldest unfinished delivery may go, and only once; the
			// queue is set aside either way, to be put back if anything is left in it.
			skipped = append(skipped, heap.Pop(&m.ready).(*epQueue))
			if head := m.orderedHead(q); head != nil && head.next <= now {
				q.items.remove(head)
				take(m.lease(head, p))
			}
			continue
		}
		it := q.items.pop()
		if q.items.len() == 0 {
			heap.Pop(&m.ready)
			delete(m.queues, q.id)
		} else {
			heap.Fix(&m.ready, 0)
		}
		take(m.lease(it, p))
		if taken != nil {
			taken[q.id]++
		}
	}
	for _, q := range skipped {
		if q.items.len() == 0 {
			delete(m.queues, q.id)
			continue
		}
		heap.Push(&m.ready, q)
	}
	return out, nil
}

// orderedHead returns q's endpoint's oldest unfinished delivery if it is pending, or nil
// if that delivery is in flight. It scans the endpoint's pending deliveries and the
// leases: the documented cost of strict ordering in the memory store.
func (m *MemoryStore) orderedHead(q *epQueue) *memItem {
	var head *memItem
	q.items.each(func(it *memItem) {
		if head == nil || it.id < head.id {
			head = it
		}
	})
	for _, it := range m.leases {
		if it.meta.endpointID == q.id && it.id < head.id {
			return nil
		}
	}
	return head
}

func (m *MemoryStore) lease(it *memItem, p ClaimParams) Delivery {
	it.state = codeInFlight
	it.leaseOwner = p.Owner
	it.leaseExp = nanos(p.LeaseUntil)
	it.updated = nanos(p.Now)
	heap.Push(&m.leases, it)
	return it.delivery()
}

// Record implements Store.
func (m *MemoryStore) Record(ctx context.Context, p RecordParams) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch p.State {
	case StatePending, StateSucceeded, StateFailed:
	default:
		return fmt.Errorf("%w: Record to state %q; want pending, succeeded or failed", ErrInvalidState, p.State)
	}
	it := m.byID.get(p.DeliveryID)
	// What a first attempt adds to an item is made before taking the lock every Claim
	// and Record contend for, in one allocation; it is dropped if the item has its own.
	var first *itemMoreFirst
	if p.Attempt != nil {
		first = new(itemMoreFirst)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if it == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, p.DeliveryID)
	}
	if it.state != codeInFlight || it.leaseOwner != p.Owner {
		return fmt.Errorf("%w: %s", ErrLeaseLost, p.DeliveryID)
	}
	heap.Remove(&m.leases, int(it.idx))
	it.apply(&p, first)
	if p.State == StatePending {
		m.push(it)
	} else {
		m.unfinished.Add(-1)
		if p.State == StateSucceeded {
			m.noteSucceeded(it)
		}
	}
	return nil
}

// apply changes the item as Delivery.Apply changes a Delivery, adding p's attempt to the
// log. Done on the packed fields, it saves the round trip through a Delivery (and its
// ten time conversions) under the lock every worker's Record takes; storetest's Record
// cases hold it to Apply. first, if not nil, is the itemMore to use if it has none.
func (it *memItem) apply(p *RecordParams, first *itemMoreFirst) {
	if a := p.Attempt; a != nil || p.Reason != "" {
		if it.more == nil {
			if first != nil {
				first.attempts = first.log[:0:1]
				it.more = &first.itemMore
			} else {
				it.more = &itemMore{}
			}
			it.more.queued = it.created
		}
		x := it.more
		if a != nil {
			x.nAttempts++
			x.lastStatus, x.lastError = int32(a.StatusCode), a.Error
			rec := *a
			rec.DeliveryID, rec.Number = it.id, len(x.attempts)+1
			x.attempts = append(x.attempts, rec)
		} else {
			x.lastError = p.Reason
		}
	}
	it.state = codeOf(p.State)
	it.leaseOwner, it.leaseExp = "", 0
	it.updated = nanos(p.Now)
	if p.State == StatePending {
		it.next = nanos(p.NextAttemptAt)
	}
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, id string) (Delivery, error) {
	if err := ctx.Err(); err != nil {
		return Delivery{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorbFresh()
	it := m.byID.get(id)
	if it == nil {
		return Delivery{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return it.delivery(), nil
}

// List implements Store. It scans every delivery: the memory store is meant for a
// process's own recent history, not for large archives.
func (m *MemoryStore) List(ctx context.Context, p ListParams) (ListResult, error) {
	if err := ctx.Err(); err != nil {
		return ListResult{}, err
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	m.mu.Lock()
	m.absorbFresh()
	var match []Delivery
	m.byID.each(func(_ string, it *memItem) {
		if d := it.delivery(); ListMatches(p, &d) {
			match = append(match, d)
		}
	})
	m.mu.Unlock()
	slices.SortFunc(match, func(a, b Delivery) int { return cmp.Compare(a.ID, b.ID) })
	var res ListResult
	if len(match) > limit {
		match = match[:limit]
		res.Next = match[limit-1].ID
	}
	res.Deliveries = match
	return res, nil
}

// ListMatches reports whether d passes p's filters and lies after p.Cursor. Stores that
// filter in memory use it so that every store agrees on List's meaning.
func ListMatches(p ListParams, d *Delivery) bool {
	return (p.EndpointID == "" || d.EndpointID == p.EndpointID) &&
		(p.EventID == "" || d.EventID == p.EventID) &&
		(p.State == "" || d.State == p.State) &&
		(p.CreatedAfter.IsZero() || !d.CreatedAt.Before(p.CreatedAfter)) &&
		(p.CreatedBefore.IsZero() || d.CreatedAt.Before(p.CreatedBefore)) &&
		(p.Cursor == "" || d.ID > p.Cursor)
}

// Attempts implements Store.
func (m *MemoryStore) Attempts(ctx context.Context, id string) ([]Attempt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorbFresh()
	it := m.byID.get(id)
	if it == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if it.more == nil {
		return nil, nil
	}
	return slices.Clone(it.more.attempts), nil
}

// Requeue implements Store.
func (m *MemoryStore) Requeue(ctx context.Context, p RequeueParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorbFresh()
	var items []*memItem
	if len(p.IDs) > 0 {
		seen := make(map[string]bool, len(p.IDs))
		for _, id := range p.IDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			it := m.byID.get(id)
			if it == nil {
				return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			if st := it.state.state(); !st.Finished() {
				return 0, fmt.Errorf("%w: %s is %s; only succeeded or failed deliveries can be requeued", ErrInvalidState, id, st)
			}
			items = append(items, it)
		}
	} else {
		m.byID.each(func(_ string, it *memItem) {
			if it.state == codeFailed && it.meta.endpointID == p.EndpointID && it.created >= nanos(p.Since) {
				items = append(items, it)
			}
		})
	}
	for _, it := range items {
		d := it.delivery()
		d.Requeue(p.Now)
		it.set(m, &d)
	}
	m.pushAll(items)
	m.unfinished.Add(int64(len(items)))
	return len(items), nil
}

// NextDue implements Store.
func (m *MemoryStore) NextDue(ctx context.Context, exclude []string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	excluded := EndpointSet(exclude)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorb()
	best := int64(0) // 0: none yet
	// Walk both heaps from the top, skipping a subtree once its root is no earlier than
	// the best so far (a heap's subtree is never earlier than its root): the cost is the
	// excluded entries near the top, not every endpoint.
	walk := func(n int, at func(i int) (int64, string)) {
		stack := []int{0}
		for len(stack) > 0 && n > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if i >= n {
				continue
			}
			t, id := at(i)
			if best != 0 && t >= best {
				continue
			}
			if !excluded(id) {
				best = t
				continue
			}
			stack = append(stack, 2*i+1, 2*i+2)
		}
	}
	walk(len(m.leases), func(i int) (int64, string) { return m.leases[i].leaseExp, m.leases[i].meta.endpointID })
	walk(len(m.ready), func(i int) (int64, string) { return m.ready[i].items.first().next, m.ready[i].id })
	for id, q := range m.parked {
		if t := q.items.first().next; !excluded(id) && (best == 0 || t < best) {
			best = t
		}
	}
	return fromNanos(best), nil
}

// Prune implements Store.
func (m *MemoryStore) Prune(ctx context.Context, p PruneParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// No absorbFresh: items not yet absorbed are pending, and Prune removes only
	// finished ones.
	var gone []string
	m.byID.each(func(id string, it *memItem) {
		if d := it.delivery(); PruneMatches(p, &d) {
			gone = append(gone, id)
		}
	})
	for _, id := range gone {
		m.byID.del(id)
	}
	return len(gone), nil
}

// PruneMatches reports whether p selects d for deletion.
func PruneMatches(p PruneParams, d *Delivery) bool {
	switch d.State {
	case StateSucceeded:
		return !p.SucceededBefore.IsZero() && d.UpdatedAt.Before(p.SucceededBefore)
	case StateFailed:
		return !p.FailedBefore.IsZero() && d.UpdatedAt.Before(p.FailedBefore)
	}
	return false
}

// EndpointSet returns a membership test for a usually tiny list of endpoint IDs, such as
// ClaimParams.ExcludeEndpoints. Stores that filter in memory use it.
func EndpointSet(ids []string) func(endpointID string) bool {
	switch {
	case len(ids) == 0:
		return func(string) bool { return false }
	case len(ids) <= 8:
		return func(id string) bool { return slices.Contains(ids, id) }
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return func(id string) bool { _, ok := set[id]; return ok }
}

// dueBefore orders pending deliveries by due time, then ID.
func dueBefore(a, b *memItem) bool { return dueCompare(a, b) < 0 }

// dueQueue holds one endpoint's pending deliveries in dueBefore order: a sorted run,
// appended to at its tail and taken from its head, and a heap of the deliveries that
// arrived out of order (a retry due before the run's tail, a Send stamped before an
// earlier absorb). Send stamps deliveries in order and absorb sorts each batch, so a
// backlog goes to the run, and a claim takes from it in O(1): a heap pop over a
// million deliveries is twenty levels of cache misses, under the store's lock. (A Send
// stamps its delivery before it takes its intake shard's lock, so one delayed there
// can still miss an absorb that took later ones: in the bench's backlog of a million,
// from 64 callers on 2 cores, 43 did in one run.)
type dueQueue struct {
	run  []*memItem // sorted; run[head:] are queued, with idx -1
	head int
	rest itemHeap // the others, with idx their place in it
}

func (q *dueQueue) len() int { return len(q.run) - q.head + len(q.rest) }

// restFirst reports whether the earliest delivery is in the heap; q must not be empty.
func (q *dueQueue) restFirst() bool {
	return q.head == len(q.run) || (len(q.rest) > 0 && dueBefore(q.rest[0], q.run[q.head]))
}

// first returns the earliest delivery; q must not be empty.
func (q *dueQueue) first() *memItem {
	if q.restFirst() {
		return q.rest[0]
	}
	return q.run[q.head]
}

func (q *dueQueue) push(it *memItem) {
	if n := len(q.run); n > q.head && dueBefore(it, q.run[n-1]) {
		heap.Push(&q.rest, it)
		return
	}
	it.idx = -1
	q.run = append(q.run, it)
}

// pop removes and returns the earliest delivery; q must not be empty.
func (q *dueQueue) pop() *memItem {
	if q.restFirst() {
		return heap.Pop(&q.rest).(*memItem)
	}
	it := q.run[q.head]
	q.run[q.head] = nil // not kept alive by the array
	q.head++
	q.compact()
	return it
}

// compact drops the run's taken head once it is at least half the run, so the array
// neither grows without bound under steady use nor is copied more than once per
// delivery on average.
func (q *dueQueue) compact() {
	switch {
	case q.head == len(q.run):
		q.run, q.head = q.run[:0], 0
	case q.head >= 64 && q.head >= len(q.run)/2:
		n := copy(q.run, q.run[q.head:])
		clear(q.run[n:])
		q.run, q.head = q.run[:n], 0
	}
}

// remove takes it, which must be queued in q, out of q.
func (q *dueQueue) remove(it *memItem) {
	if it.idx >= 0 {
		heap.Remove(&q.rest, int(it.idx))
		return
	}
	i := slices.Index(q.run[q.head:], it) + q.head
	copy(q.run[i:], q.run[i+1:])
	q.run[len(q.run)-1] = nil
	q.run = q.run[:len(q.run)-1]
	q.compact()
}

// each calls fn for every queued delivery, in no particular order.
func (q *dueQueue) each(fn func(*memItem)) {
	for _, it := range q.run[q.head:] {
		fn(it)
	}
	for _, it := range q.rest {
		fn(it)
	}
}

// itemHeap orders pending deliveries by dueBefore.
type itemHeap []*memItem

func (h itemHeap) Len() int           { return len(h) }
func (h itemHeap) Less(i, j int) bool { return dueBefore(h[i], h[j]) }
func (h itemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].idx = int32(i); h[j].idx = int32(j) }
func (h *itemHeap) Push(x any)        { it := x.(*memItem); it.idx = int32(len(*h)); *h = append(*h, it) }
func (h *itemHeap) Pop() any          { return popLast((*[]*memItem)(h)) }
func popLast[T any](h *[]T) T {
	old := *h
	x := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	return x
}

// epQueue is one endpoint's pending deliveries.
type epQueue struct {
	id     string
	items  dueQueue
	idx    int  // position in MemoryStore.ready, unless parked
	parked bool // in MemoryStore.parked instead of ready
}

// epHeap orders endpoint queues by their earliest due delivery.
type epHeap []*epQueue

func (h epHeap) Len() int { return len(h) }
func (h epHeap) Less(i, j int) bool {
	return h[i].items.first().next < h[j].items.first().next
}
func (h epHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *epHeap) Push(x any)   { q := x.(*epQueue); q.idx = len(*h); *h = append(*h, q) }
func (h *epHeap) Pop() any     { return popLast((*[]*epQueue)(h)) }

// leaseHeap orders in-flight deliveries by lease expiry.
type leaseHeap []*memItem

func (h leaseHeap) Len() int { return len(h) }
func (h leaseHeap) Less(i, j int) bool {
	return h[i].leaseExp < h[j].leaseExp
}
func (h leaseHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = int32(i); h[j].idx = int32(j) }
func (h *leaseHeap) Push(x any)   { it := x.(*memItem); it.idx = int32(len(*h)); *h = append(*h, it) }
func (h *leaseHeap) Pop() any     { return popLast((*[]*memItem)(h)) }
