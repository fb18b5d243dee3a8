package webhook

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"
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
//
// Deliveries are kept in records that hold no pointers (see memRec), in chunks the
// garbage collector need not scan, so that a backlog costs the host process's collector
// little more than its bodies: with a million pending deliveries held as objects with
// pointers, one collection took 115-270 ms of CPU in the bench's backlog scenario;
// held as records, 22-26 ms (three interleaved runs of each build; see the README).
type MemoryStore struct {
	// mu guards the records, the heaps, the leases and the tables below. Send does not
	// take it: new deliveries wait in intake (in shards with locks of their own) until
	// the next Claim or NextDue absorbs them, so callers of Send contend only for a
	// short append.
	mu         sync.Mutex
	capacity   int
	unfinished atomic.Int64
	recs       recTable
	byID       idIndex
	intake     [16]intakeShard
	// testHookAbsorbed, if set, is called by absorb once it has indexed each shard's
	// items, with m.mu held.
	testHookAbsorbed func(shard int)
	absorbing        []slot // absorb's batch, kept from one absorb to the next
	claiming         []slot // Claim's, likewise
	// freshInIntake and reservedInIntake count the deliveries in intake from
	// enqueueFresh and from a direct Enqueue; whatever looks deliveries up absorbs them
	// first (absorbIfAny). Send's path adds to one counter only. freshInIntake has a
	// meaning of its own: a direct Enqueue absorbs those before its duplicate check.
	freshInIntake    atomic.Int64
	reservedInIntake atomic.Int64
	queues           map[string]*epQueue // pending deliveries per endpoint
	ready            epHeap              // endpoint queues by their earliest NextAttemptAt
	// parked holds the queues of endpoints the last claims excluded, out of ready, so
	// that a claim does not pop and push back every excluded queue that is due first
	// (a hundred endpoints with open circuits made that a tenth of a Sender's CPU); each
	// claim returns those no longer excluded to ready.
	parked map[string]*epQueue
	leases slotHeap // in-flight deliveries by lease expiry (leaseBefore)
	// metas and owners intern what many records share: endpoint, event type and
	// version, and lease owner (index 0 is no owner).
	metas  interner[itemMeta]
	owners interner[string]
	// mores[i] is the itemMore of the records whose more is i; 0 is none. moreFree
	// lists the indexes free for reuse.
	mores    []*itemMore
	moreFree []uint32
	// succeeded lists succeeded deliveries in the order they finished, from
	// succeeded[succHead] on, so the oldest can be dropped past capacity. An entry is
	// stale (and skipped) if its record was since requeued, pruned or finished again.
	succeeded   []succeededEntry
	succHead    int
	internBound int // see reintern
}

type succeededEntry struct {
	s       slot
	gen     uint32 // the record's gen when it succeeded
	updated int64  // the record's updated time when it succeeded
}

// noteSucceeded records that s just succeeded and drops the oldest succeeded deliveries
// past capacity. The caller holds m.mu.
func (m *MemoryStore) noteSucceeded(s slot) {
	if m.capacity <= 0 {
		return
	}
	r := m.recs.rec(s)
	m.succeeded = append(m.succeeded, succeededEntry{s, r.gen, r.updated})
	for len(m.succeeded)-m.succHead > m.capacity {
		e := m.succeeded[m.succHead]
		m.succeeded[m.succHead] = succeededEntry{}
		m.succHead++
		if old := m.recs.at(e.s); old != nil && old.gen == e.gen && old.state == codeSucceeded && old.updated == e.updated {
			m.remove(e.s)
		}
	}
	if m.succHead > len(m.succeeded)/2 && m.succHead > 64 {
		n := copy(m.succeeded, m.succeeded[m.succHead:])
		clear(m.succeeded[n:])
		m.succeeded, m.succHead = m.succeeded[:n], 0
	}
}

// memRec is a delivery as the memory store holds it. It has no pointers, so the chunks
// of records are memory the garbage collector does not scan: times as Unix nanoseconds,
// the state as a byte, the ID's bytes in the record, the event ID as its place in the
// body (where a Sender's envelope has it), and what is shared or rare as indexes into
// the store's tables: endpoint, event type and version (metas), lease owner (owners),
// what only an attempted or requeued delivery has (mores: attempt log, last status and
// error, a QueuedAt of its own), and an ID or event ID that does not fit (recTable.long).
// The body is the one pointer a delivery keeps, in its chunk's bodies.
type memRec struct {
	created  int64 // Unix nanoseconds, 0 for the zero time
	next     int64
	updated  int64
	leaseExp int64
	gen      uint32 // the store's allocation count when the slot was last taken
	idx      int32  // position in the lease heap or its queue's heap; -1 in its queue's run
	meta     uint32 // MemoryStore.metas
	owner    uint32 // MemoryStore.owners; 0: not leased
	more     uint32 // MemoryStore.mores; 0: never attempted, no error, queued when created
	evOff    uint16 // the event ID is body[evOff:evOff+evLen] if flags has recEventInBody
	evLen    uint8
	idLen    uint8 // bytes of idBuf in use, unless flags has recLongID
	state    stateCode
	flags    uint8
	idBuf    [32]byte
}

const (
	recEventInBody = 1 << iota // the event ID is in the body at evOff
	recLongID                  // the ID is in recTable.long, not idBuf
	recLongEvent               // the event ID is in recTable.long
)

// itemMeta is what many deliveries share: interned by MemoryStore.metas.
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
	codeFree  // a slot that holds no delivery
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

// slot addresses a record: its chunk's index times recChunkLen plus its offset.
type slot = uint32

const (
	recShift    = 10
	recChunkLen = 1 << recShift
)

// recChunk holds recChunkLen records and their bodies. The bodies come first, so the
// collector's scan of a chunk ends where the records begin.
type recChunk struct {
	bodies [recChunkLen][]byte
	recs   [recChunkLen]memRec
	free   []uint16 // offsets given back, taken first
	used   int      // offsets [0, used) have been taken at least once
}

// live returns how many of the chunk's slots hold a delivery.
func (ch *recChunk) live() int { return ch.used - len(ch.free) }

// recTable holds the records in chunks, taking slots from the lowest chunk with room, so
// that records gather in the first chunks and a chunk emptied above them (once a
// backlog drains) is given back to the collector.
type recTable struct {
	chunks []*recChunk // nil: given back
	// avail has bit c set when chunks[c] exists and has room; availLow is a word of
	// avail below which every word is zero.
	avail    []uint64
	availLow int
	gen      uint32
	long     map[slot]longStrs
}

// longStrs holds what does not fit in a record.
type longStrs struct{ id, eventID string }

// at returns s's record, or nil if its chunk has been given back.
func (t *recTable) at(s slot) *memRec {
	c := int(s >> recShift)
	if c >= len(t.chunks) || t.chunks[c] == nil {
		return nil
	}
	return &t.chunks[c].recs[s&(recChunkLen-1)]
}

// rec returns s's record, which must be live.
func (t *recTable) rec(s slot) *memRec { return &t.chunks[s>>recShift].recs[s&(recChunkLen-1)] }

func (t *recTable) body(s slot) []byte { return t.chunks[s>>recShift].bodies[s&(recChunkLen-1)] }

func (t *recTable) setBody(s slot, b []byte) { t.chunks[s>>recShift].bodies[s&(recChunkLen-1)] = b }

// id returns s's ID. Unless it is long, the string is the record's bytes: it must not be
// kept past the caller's hold of the store's lock, nor handed out.
func (t *recTable) id(s slot) string {
	r := t.rec(s)
	if r.flags&recLongID != 0 {
		return t.long[s].id
	}
	return unsafe.String(&r.idBuf[0], int(r.idLen))
}

// idIs reports whether s holds the delivery with this ID.
func (t *recTable) idIs(s slot, id string) bool {
	r := t.at(s)
	return r != nil && r.state != codeFree && t.id(s) == id
}

func (t *recTable) setAvail(c int, on bool) {
	w := c / 64
	if on {
		for len(t.avail) <= w {
			t.avail = append(t.avail, 0)
		}
		t.avail[w] |= 1 << (c % 64)
		t.availLow = min(t.availLow, w)
	} else if w < len(t.avail) {
		t.avail[w] &^= 1 << (c % 64)
	}
}

// lowestAvail returns the lowest chunk with room, or -1.
func (t *recTable) lowestAvail() int {
	for w := t.availLow; w < len(t.avail); w++ {
		if t.avail[w] != 0 {
			t.availLow = w
			return w*64 + bits.TrailingZeros64(t.avail[w])
		}
	}
	t.availLow = len(t.avail)
	return -1
}

// alloc takes a free slot, its record zero but for gen and state codeFree (until
// MemoryStore.write fills it).
func (t *recTable) alloc() slot {
	c := t.lowestAvail()
	if c < 0 {
		c = slices.Index(t.chunks, nil)
		if c < 0 {
			c = len(t.chunks)
			t.chunks = append(t.chunks, nil)
		}
		t.chunks[c] = new(recChunk)
		t.setAvail(c, true)
	}
	ch := t.chunks[c]
	var off int
	if n := len(ch.free); n > 0 {
		off = int(ch.free[n-1])
		ch.free = ch.free[:n-1]
	} else {
		off = ch.used
		ch.used++
	}
	if ch.live() == recChunkLen {
		t.setAvail(c, false)
	}
	t.gen++
	ch.recs[off] = memRec{gen: t.gen, state: codeFree}
	return slot(c<<recShift | off)
}

// release frees s, whose record must be live; the caller has dropped its other
// references (index, queues, tables).
func (t *recTable) release(s slot) {
	c, off := int(s>>recShift), int(s&(recChunkLen-1))
	ch := t.chunks[c]
	if ch.recs[off].flags&(recLongID|recLongEvent) != 0 {
		delete(t.long, s)
	}
	ch.recs[off] = memRec{gen: ch.recs[off].gen, state: codeFree}
	ch.bodies[off] = nil
	ch.free = append(ch.free, uint16(off))
	// Empty, it is given back unless the next alloc would take from it anyway (the
	// lowest chunk with room), so one delivery coming and going at a chunk's edge does
	// not make and drop a chunk each time.
	if low := t.lowestAvail(); ch.live() == 0 && low >= 0 && low < c {
		t.chunks[c] = nil
		t.setAvail(c, false)
		for n := len(t.chunks); n > 0 && t.chunks[n-1] == nil; n-- {
			t.chunks = t.chunks[:n-1]
		}
		return
	}
	t.setAvail(c, true)
}

// each calls fn for every live slot.
func (t *recTable) each(fn func(s slot, r *memRec)) {
	for c, ch := range t.chunks {
		if ch == nil {
			continue
		}
		for off := range ch.used {
			if r := &ch.recs[off]; r.state != codeFree {
				fn(slot(c<<recShift|off), r)
			}
		}
	}
}

// interner gives each distinct key a small index. Keys in a row are mostly alike (a
// backlog's deliveries share endpoint, type and version), so the last one found is
// checked before the map.
type interner[K comparable] struct {
	list []K
	idx  map[K]uint32
	last uint32 // index of the key get returned last, if list is not empty
}

func (t *interner[K]) get(k K) uint32 {
	if int(t.last) < len(t.list) && t.list[t.last] == k {
		return t.last
	}
	i, ok := t.idx[k]
	if !ok {
		if t.idx == nil {
			t.idx = make(map[K]uint32)
		}
		i = uint32(len(t.list))
		t.list = append(t.list, k)
		t.idx[k] = i
	}
	t.last = i
	return i
}

// maxInterned bounds the intern tables: past it they are rebuilt from the live records
// (see reintern), so endpoints, types and Senders that come and go cannot grow them
// forever.
const maxInterned = 1 << 16

// reintern rebuilds the intern tables from the live records once either has grown
// past its bound. The caller holds m.mu.
func (m *MemoryStore) reintern() {
	if len(m.metas.list) < m.internBound && len(m.owners.list) < m.internBound {
		return
	}
	metas, owners := m.metas, m.owners
	m.metas, m.owners = interner[itemMeta]{}, interner[string]{}
	m.owners.get("")
	m.recs.each(func(_ slot, r *memRec) {
		r.meta = m.metas.get(metas.list[r.meta])
		r.owner = m.owners.get(owners.list[r.owner])
	})
	// If most of them are in use, a rebuild would free little: the bound grows instead.
	m.internBound = max(m.internBound, 2*len(m.metas.list), 2*len(m.owners.list))
}

// newMore stores x in mores and returns its index. The caller holds m.mu.
func (m *MemoryStore) newMore(x *itemMore) uint32 {
	if n := len(m.moreFree); n > 0 {
		i := m.moreFree[n-1]
		m.moreFree = m.moreFree[:n-1]
		m.mores[i] = x
		return i
	}
	if len(m.mores) == 0 {
		m.mores = append(m.mores, nil) // index 0 is none
	}
	m.mores = append(m.mores, x)
	return uint32(len(m.mores) - 1)
}

// more returns r's itemMore, or nil.
func (m *MemoryStore) more(r *memRec) *itemMore {
	if r.more == 0 {
		return nil
	}
	return m.mores[r.more]
}

// remove drops a finished delivery from the store. The caller holds m.mu.
func (m *MemoryStore) remove(s slot) {
	r := m.recs.rec(s)
	m.byID.del(m.recs.id(s), s)
	if r.more != 0 {
		m.mores[r.more] = nil
		m.moreFree = append(m.moreFree, r.more)
	}
	m.recs.release(s)
}

// delivery returns s's record as a Delivery whose ID is id: a string the caller has
// made or been given, as the record's own bytes may later hold another ID.
func (m *MemoryStore) delivery(s slot, id string) Delivery {
	r := m.recs.rec(s)
	meta := &m.metas.list[r.meta]
	body := m.recs.body(s)
	d := Delivery{
		ID: id, EventType: meta.eventType, EndpointID: meta.endpointID,
		Version: meta.version, Body: body, State: r.state.state(),
		CreatedAt: fromNanos(r.created), QueuedAt: fromNanos(r.created),
		NextAttemptAt: fromNanos(r.next), UpdatedAt: fromNanos(r.updated),
		LeaseOwner: m.owners.list[r.owner], LeaseExpiresAt: fromNanos(r.leaseExp),
	}
	switch {
	case r.flags&recEventInBody != 0:
		d.EventID = unsafe.String(&body[r.evOff], int(r.evLen))
	case r.flags&recLongEvent != 0:
		d.EventID = m.recs.long[s].eventID
	}
	if x := m.more(r); x != nil {
		d.QueuedAt = fromNanos(x.queued)
		d.Attempts, d.LastStatus, d.LastError = int(x.nAttempts), int(x.lastStatus), x.lastError
	}
	return d
}

// inItem is a delivery on its way into the store: its record as far as it can be made
// without the store's lock, and what the lock's tables will take. 184 bytes, which Send
// copies into intake: what a Sender's fresh delivery lacks is behind x.
type inItem struct {
	rec      memRec
	body     []byte
	meta     itemMeta
	x        *inExtra // nil: no lease owner, nothing long, nothing for mores
	reserved bool     // a direct Enqueue's: its ID is reserved in the index (idIndex.reserve)
}

type inExtra struct {
	owner            string
	long             longStrs
	more             bool // the fields below differ from a fresh delivery's
	queued           int64
	nAttempts, lastS int32
	lastError        string
}

// prep makes d's inItem.
func prep(d *Delivery) inItem {
	in := inItem{body: d.Body, meta: itemMeta{d.EndpointID, d.EventType, d.Version}}
	r := &in.rec
	var long longStrs
	if len(d.ID) <= len(r.idBuf) {
		r.idLen = uint8(copy(r.idBuf[:], d.ID))
	} else {
		r.flags |= recLongID
		long.id = d.ID
	}
	if ev := d.EventID; ev != "" {
		if off, ok := within(d.Body, ev); ok && off <= 0xffff && len(ev) <= 0xff {
			r.flags |= recEventInBody
			r.evOff, r.evLen = uint16(off), uint8(len(ev))
		} else {
			r.flags |= recLongEvent
			long.eventID = ev
		}
	}
	r.state = codeOf(d.State)
	r.created, r.next, r.updated = nanos(d.CreatedAt), nanos(d.NextAttemptAt), nanos(d.UpdatedAt)
	r.leaseExp = nanos(d.LeaseExpiresAt)
	queued := nanos(d.QueuedAt)
	more := d.Attempts != 0 || d.LastStatus != 0 || d.LastError != "" || queued != r.created
	if more || d.LeaseOwner != "" || r.flags&(recLongID|recLongEvent) != 0 {
		in.x = &inExtra{owner: d.LeaseOwner, long: long, more: more, queued: queued,
			nAttempts: int32(d.Attempts), lastS: int32(d.LastStatus), lastError: d.LastError}
	}
	return in
}

// within returns where s's bytes lie in b, if they do (a Sender's event ID is a part of
// its envelope).
func within(b []byte, s string) (int, bool) {
	if len(b) == 0 || len(s) == 0 {
		return 0, false
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if off > uintptr(len(b)) || uintptr(len(s)) > uintptr(len(b))-off {
		return 0, false
	}
	return int(off), true
}

// write stores in in s's record, which keeps its gen, idx and attempt log. The caller
// holds m.mu.
func (m *MemoryStore) write(s slot, in *inItem) {
	m.reintern() // first: r's indexes are still valid, or it is still free
	r := m.recs.rec(s)
	gen, idx, more := r.gen, r.idx, r.more
	if r.flags&(recLongID|recLongEvent) != 0 {
		delete(m.recs.long, s)
	}
	*r = in.rec
	r.gen, r.idx, r.more = gen, idx, more
	r.meta = m.metas.get(in.meta)
	m.recs.setBody(s, in.body)
	e := in.x
	if e == nil { // as a fresh delivery's
		e = &inExtra{queued: r.created}
	}
	if e.owner != "" {
		r.owner = m.owners.get(e.owner)
	}
	if r.flags&(recLongID|recLongEvent) != 0 {
		if m.recs.long == nil {
			m.recs.long = make(map[slot]longStrs)
		}
		m.recs.long[s] = e.long
	}
	if r.more == 0 && !e.more {
		return
	}
	if r.more == 0 {
		r.more = m.newMore(&itemMore{})
	}
	x := m.mores[r.more] // its attempt log is kept
	x.queued, x.nAttempts, x.lastStatus, x.lastError = e.queued, e.nAttempts, e.lastS, e.lastError
}

// place stores in in a new slot and indexes it, unless its ID is taken. The caller
// holds m.mu.
func (m *MemoryStore) place(in *inItem) (slot, bool) {
	s := m.recs.alloc()
	m.write(s, in)
	if !m.byID.add(&m.recs, m.recs.id(s), s, in.reserved) {
		m.remove(s)
		return 0, false
	}
	return s, true
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
		internBound: maxInterned}
	m.owners.get("")
	m.ready.r, m.leases.less = &m.recs, leaseBefore
	m.byID.init()
	return m
}

// Len returns the number of unfinished (pending or in-flight) deliveries.
func (m *MemoryStore) Len() int { return int(m.unfinished.Load()) }

// absorb moves enqueued deliveries into records, the ID index and the endpoint queues.
// The shards' deliveries interleave in time, so they are sorted into due order first:
// each then joins the end of its queue's run instead of its heap. Every shard is cut
// before any delivery is indexed. Indexing half a million deliveries of a backlog takes
// most of a second: when each shard was cut only after the shards before it were
// indexed, the last shard's cut came that much later than the first's, the first
// shard's deliveries of that time came in the next absorb, behind this one's latest,
// and 37% of the bench's backlog went to the heap. The caller holds m.mu.
func (m *MemoryStore) absorb() {
	var cut [len(m.intake)][]*intakeBlock
	for i := range m.intake {
		sh := &m.intake[i]
		sh.mu.Lock()
		cut[i] = sh.blocks
		sh.blocks = sh.spare
		sh.mu.Unlock()
	}
	batch := m.absorbing
	for i := range m.intake {
		n, fresh := 0, 0
		for _, blk := range cut[i] {
			in := blk.items[:blk.n]
			for j := range in {
				if !in[j].reserved {
					fresh++
				}
				s, ok := m.place(&in[j])
				if !ok {
					// Only an ID guessed before its Send returned can get here (Enqueue
					// checks its own IDs). Such a delivery could be neither looked up
					// nor recorded, and would be claimed and sent again after every
					// lease; it is counted out instead.
					m.unfinished.Add(-1)
					continue
				}
				batch = append(batch, s)
			}
			n += len(in)
			clear(in) // the bodies and strings are not kept alive by the block
			blk.n = 0
			intakeBlocks.Put(blk)
		}
		if fresh > 0 {
			m.freshInIntake.Add(-int64(fresh))
		}
		if n > fresh {
			m.reservedInIntake.Add(-int64(n - fresh))
		}
		clear(cut[i])
		m.intake[i].spare = nil
		if cap(cut[i]) <= maxSpareBlocks {
			m.intake[i].spare = cut[i][:0]
		}
		if m.testHookAbsorbed != nil {
			m.testHookAbsorbed(i)
		}
	}
	m.pushAll(batch)
	m.absorbing = batch[:0]
	if cap(batch) > 1<<16 {
		m.absorbing = nil
	}
}

// pushAll pushes pending records in due order. The caller holds m.mu.
func (m *MemoryStore) pushAll(ss []slot) {
	less := func(a, b slot) int { return m.recs.dueCompare(a, b) }
	if !slices.IsSortedFunc(ss, less) {
		slices.SortFunc(ss, less)
	}
	for _, s := range ss {
		m.push(s)
	}
}

// dueCompare orders pending deliveries by due time, then ID.
func (t *recTable) dueCompare(a, b slot) int {
	if c := cmp.Compare(t.rec(a).next, t.rec(b).next); c != 0 {
		return c
	}
	return cmp.Compare(t.id(a), t.id(b))
}

func dueBefore(t *recTable, a, b slot) bool { return t.dueCompare(a, b) < 0 }

func leaseBefore(t *recTable, a, b slot) bool { return t.rec(a).leaseExp < t.rec(b).leaseExp }

// absorbIfAny absorbs if intake holds deliveries. The caller holds m.mu. A delivery
// whose Enqueue has not returned yet may be missed, as a call that came just before it
// would miss it; one whose Enqueue has returned is counted.
func (m *MemoryStore) absorbIfAny() {
	if m.inIntakeLen() > 0 {
		m.absorb()
	}
}

// inIntakeLen returns how many deliveries intake holds.
func (m *MemoryStore) inIntakeLen() int64 {
	return m.freshInIntake.Load() + m.reservedInIntake.Load()
}

// intakeShard holds deliveries enqueued since the last absorb. Sixteen of them, each
// Enqueue appending to the one its first ID picks: with one lock, 64 callers of Send
// queued on each other often enough to show in Send's tail latency. The deliveries are
// held by value in blocks of intakeBlockLen, from a pool: a growing slice of them had
// copied its whole array at each doubling, more bytes than the deliveries themselves
// when a busy dispatcher absorbed thousands at a time. spare is the block list absorb
// emptied last, reused; only absorb (under mu of the store) touches it.
type intakeShard struct {
	mu     sync.Mutex
	blocks []*intakeBlock
	spare  []*intakeBlock
}

// add appends in. The caller holds sh.mu.
func (sh *intakeShard) add(in *inItem) {
	var blk *intakeBlock
	if n := len(sh.blocks); n > 0 && sh.blocks[n-1].n < intakeBlockLen {
		blk = sh.blocks[n-1]
	} else {
		blk = intakeBlocks.Get().(*intakeBlock)
		sh.blocks = append(sh.blocks, blk)
	}
	blk.items[blk.n] = *in
	blk.items[blk.n].rec.state = codePending
	blk.n++
}

const (
	intakeBlockLen = 64  // 64 inItems of 184 bytes: a block in the 12 KiB size class
	maxSpareBlocks = 256 // bounds the block list's array a shard keeps (8 bytes an entry)
)

type intakeBlock struct {
	items [intakeBlockLen]inItem
	n     int
}

// intakeBlocks holds emptied blocks for reuse by every store; the collector may drop
// them.
var intakeBlocks = sync.Pool{New: func() any { return new(intakeBlock) }}

// intakeShardOf returns the intake shard for a delivery ID: from its last bytes, the
// random tail of a generated ID.
func intakeShardOf(id string) int {
	h := uint(0)
	for i := max(0, len(id)-4); i < len(id); i++ {
		h = h*31 + uint(id[i])
	}
	return int(h % 16)
}

// idIndex maps delivery IDs to slots, by a seeded hash of the ID, in shards with their
// own locks so that a Record can look its delivery up before it takes the store's lock.
// Its maps hold no pointers, so the collector does not scan them. An ID whose hash
// another ID already holds is kept in dup. Changes are made with the store's lock held.
type idIndex struct {
	seed maphash.Seed
	mask uint64 // the hash's bits in use: all but in tests that make IDs collide
	sh   [256]idShard
}

type idShard struct {
	mu  sync.Mutex
	m   map[uint64]slot
	dup map[string]slot
	// reserved holds the IDs of a direct Enqueue's deliveries until absorb indexes
	// them.
	reserved map[string]struct{}
}

func (x *idIndex) init() {
	x.seed, x.mask = maphash.MakeSeed(), ^uint64(0)
	for i := range x.sh {
		x.sh[i].m = make(map[uint64]slot)
	}
}

func (x *idIndex) hash(id string) (uint64, *idShard) {
	h := maphash.String(x.seed, id) & x.mask
	return h, &x.sh[h>>56]
}

// peek returns the slot the index holds for id's hash, which holds id unless another
// ID has the same hash or the store changed since. It does not need the store's lock.
func (x *idIndex) peek(id string) (slot, bool) {
	h, sh := x.hash(id)
	sh.mu.Lock()
	s, ok := sh.m[h]
	sh.mu.Unlock()
	return s, ok
}

// find returns id's slot if the shard holds it, and whether the map holds id's hash
// (for id or another ID: a new ID of that hash goes to dup). With t nil (the store's
// lock not held) the map's entry cannot be checked, and is not taken for id's. The
// caller holds sh.mu.
func (sh *idShard) find(t *recTable, h uint64, id string) (s slot, found, hashHeld bool) {
	if s, ok := sh.dup[id]; ok {
		return s, true, true
	}
	s, hashHeld = sh.m[h]
	return s, hashHeld && t != nil && t.idIs(s, id), hashHeld
}

// get returns id's slot. The caller holds the store's lock.
func (x *idIndex) get(t *recTable, id string) (slot, bool) {
	h, sh := x.hash(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, found, _ := sh.find(t, h, id)
	return s, found
}

type reserveResult int

const (
	reserveDone  reserveResult = iota
	reserveTaken               // id is stored or reserved
	reserveCheck               // the index holds id's hash: call again with the records
)

// reserve reserves id unless it is taken. With t nil (the store's lock not held) it
// cannot tell id from another ID of the same hash, and says reserveCheck instead.
func (x *idIndex) reserve(t *recTable, id string) reserveResult {
	h, sh := x.hash(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.reserved[id]; ok {
		return reserveTaken
	}
	switch _, found, hashHeld := sh.find(t, h, id); {
	case found:
		return reserveTaken
	case hashHeld && t == nil:
		return reserveCheck
	}
	if sh.reserved == nil {
		sh.reserved = make(map[string]struct{})
	}
	sh.reserved[id] = struct{}{}
	return reserveDone
}

func (x *idIndex) unreserve(id string) {
	_, sh := x.hash(id)
	sh.mu.Lock()
	delete(sh.reserved, id)
	sh.mu.Unlock()
}

// add indexes s under its ID unless the ID is taken, and reports whether it did;
// reserved: the ID is reserved for s, and is released either way. The caller holds the
// store's lock.
func (x *idIndex) add(t *recTable, id string, s slot, reserved bool) bool {
	h, sh := x.hash(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if reserved {
		delete(sh.reserved, id)
	} else if _, ok := sh.reserved[id]; ok {
		return false
	}
	_, found, hashHeld := sh.find(t, h, id)
	switch {
	case found:
		return false
	case !hashHeld:
		sh.m[h] = s
		return true
	}
	if sh.dup == nil {
		sh.dup = make(map[string]slot)
	}
	sh.dup[id] = s
	return true
}

// del removes id, which s holds, from the index. The caller holds the store's lock.
func (x *idIndex) del(id string, s slot) {
	h, sh := x.hash(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if d, ok := sh.dup[id]; ok && d == s {
		delete(sh.dup, id)
		return
	}
	if cur, ok := sh.m[h]; ok && cur == s {
		delete(sh.m, h)
	}
}

// Enqueue implements Store. It does not take the store's lock either (a store that
// wraps a MemoryStore sends every Send through here): each ID is reserved in the ID
// index, which refuses one already stored or reserved, and the deliveries wait in
// intake as enqueueFresh's do.
func (m *MemoryStore) Enqueue(ctx context.Context, ds []Delivery) error {
	return m.enqueue(ctx, ds, true)
}

// enqueue is Enqueue, reserving each ID in the index first and refusing duplicates, and
// with reserve false enqueueFresh, whose IDs are freshly generated.
func (m *MemoryStore) enqueue(ctx context.Context, ds []Delivery, reserve bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	if reserve && m.freshInIntake.Load() > 0 {
		// Index what Sends put in intake first, so that the duplicate check sees every
		// ID already handed out.
		m.mu.Lock()
		m.absorb()
		m.mu.Unlock()
	}
	n := int64(len(ds))
	if !m.takeRoom(n) {
		return errMemoryFull
	}
	if reserve {
		// A refused ID undoes the batch's earlier reservations, so it is stored whole
		// or not at all.
		for i := range ds {
			if !m.reserveID(ds[i].ID) {
				for j := range i {
					m.byID.unreserve(ds[j].ID)
				}
				m.unfinished.Add(-n)
				return fmt.Errorf("%w: the memory store already holds %q, or the batch repeats it", ErrDuplicateDelivery, ds[i].ID)
			}
		}
	}
	m.toIntake(ds, reserve)
	return nil
}

// reserveID reserves id in the index unless it is stored or reserved already. Only when
// the index holds an entry for id's hash does it take the store's lock, to compare the
// ID with that entry's record.
func (m *MemoryStore) reserveID(id string) bool {
	switch m.byID.reserve(nil, id) {
	case reserveDone:
		return true
	case reserveTaken:
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID.reserve(&m.recs, id) == reserveDone
}

// takeRoom counts n more unfinished deliveries if there is room for them. A full store is
// where callers waiting for room spin, so a refusal builds nothing, and when the count
// shows no room it does not even write the count (an add and its undo are two writes to
// a line every Send and Record shares).
func (m *MemoryStore) takeRoom(n int64) bool {
	if m.capacity > 0 && m.unfinished.Load()+n > int64(m.capacity) {
		return false
	}
	if total := m.unfinished.Add(n); m.capacity > 0 && total > int64(m.capacity) {
		m.unfinished.Add(-n)
		return false
	}
	return true
}

// enqueueFresh is Enqueue for deliveries whose IDs a Sender has just generated: unique
// in this process by construction (a process-wide counter under 79 random bits), so they
// skip the duplicate check and the store's lock: they wait in intake, and the ID index
// learns them when the dispatcher's next claim absorbs them. Inserting into the index in
// Send had put its map growth, a rehash of up to a thousand entries, into one Send in a
// hundred: with it deferred, Send's p99 in the bench's send-latency scenario fell by a
// quarter to a half. Every method that looks deliveries up absorbs first, so none is
// missed meanwhile. Send allocates nothing here: intake holds the deliveries by value.
func (m *MemoryStore) enqueueFresh(ctx context.Context, ds []Delivery) error {
	return m.enqueue(ctx, ds, false)
}

// toIntake puts ds in intake, for the next absorb; reserved: Enqueue has reserved their
// IDs.
func (m *MemoryStore) toIntake(ds []Delivery, reserved bool) {
	n := int64(len(ds))
	sh := &m.intake[intakeShardOf(ds[0].ID)]
	if len(ds) == 1 { // made before the shard's lock, which 64 callers may share
		in := prep(&ds[0])
		in.reserved = reserved
		sh.mu.Lock()
		sh.add(&in)
		sh.mu.Unlock()
	} else {
		sh.mu.Lock()
		for i := range ds {
			in := prep(&ds[i])
			in.reserved = reserved
			sh.add(&in)
		}
		sh.mu.Unlock()
	}
	// Counted once they are in: an absorb in between counts them out first, so a count
	// may be briefly low, never high after the last absorb.
	if reserved {
		m.reservedInIntake.Add(n)
	} else {
		m.freshInIntake.Add(n)
	}
}

// push puts a pending record into its endpoint's queue.
func (m *MemoryStore) push(s slot) {
	ep := m.endpointOf(s)
	q := m.queues[ep]
	if q == nil {
		q = &epQueue{id: ep}
		m.queues[ep] = q
		q.items.push(&m.recs, s)
		heap.Push(&m.ready, q)
		return
	}
	q.items.push(&m.recs, s)
	if !q.parked {
		heap.Fix(&m.ready, q.idx)
	}
}

// endpointOf returns s's endpoint ID.
func (m *MemoryStore) endpointOf(s slot) string { return m.metas.list[m.recs.rec(s).meta].endpointID }

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
	return m.claimAppend(ctx, p, nil)
}

// claimAppend is Claim appending to dst, which a Sender's dispatcher reuses from one
// claim to the next (it hands the deliveries on by value): a Delivery is 288 bytes, a
// fresh slice of them per claim 6% of the bytes allocated per delivery at full speed.
func (m *MemoryStore) claimAppend(ctx context.Context, p ClaimParams, dst []Delivery) ([]Delivery, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	if p.Limit <= 0 {
		return dst, nil
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
	m.absorbIfAny()
	m.unpark(excluded)
	got := m.claiming[:0]
	defer func() {
		if m.claiming = got[:0]; cap(got) > 4096 {
			m.claiming = nil
		}
	}()
	m.reintern()
	owner := m.owners.get(p.Owner)
	now, until := nanos(p.Now), nanos(p.LeaseUntil)
	take := func(s slot) {
		r := m.recs.rec(s)
		r.state, r.owner, r.leaseExp, r.updated = codeInFlight, owner, until, now
		m.leases.push(&m.recs, s)
		got = append(got, s)
		if taken != nil {
			taken[m.endpointOf(s)]++
		}
	}
	var aside []slot
	for len(got) < p.Limit && m.leases.len() > 0 && m.recs.rec(m.leases.s[0]).leaseExp <= now {
		s := m.leases.pop(&m.recs)
		if ep := m.endpointOf(s); excluded(ep) || full(ep) {
			aside = append(aside, s)
			continue
		}
		take(s)
	}
	for _, s := range aside {
		m.leases.push(&m.recs, s)
	}
	var skipped []*epQueue
	for len(got) < p.Limit && m.ready.Len() > 0 {
		q := m.ready.qs[0]
		if q.items.firstDue(&m.recs) > now {
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
			if head, ok := m.orderedHead(q); ok && m.recs.rec(head).next <= now {
				q.items.remove(&m.recs, head)
				take(head)
			}
			continue
		}
		s := q.items.pop(&m.recs)
		if q.items.len() == 0 {
			heap.Pop(&m.ready)
			delete(m.queues, q.id)
		} else {
			heap.Fix(&m.ready, 0)
		}
		take(s)
	}
	for _, q := range skipped {
		if q.items.len() == 0 {
			delete(m.queues, q.id)
			continue
		}
		heap.Push(&m.ready, q)
	}
	return m.appendDeliveries(dst, got), nil
}

// appendDeliveries appends the records to dst as Deliveries, their IDs copied into one
// allocation. The caller holds m.mu.
func (m *MemoryStore) appendDeliveries(dst []Delivery, ss []slot) []Delivery {
	if len(ss) == 0 {
		return dst
	}
	n := 0
	for _, s := range ss {
		if r := m.recs.rec(s); r.flags&recLongID == 0 {
			n += int(r.idLen)
		}
	}
	buf := make([]byte, 0, n)
	dst = slices.Grow(dst, len(ss))
	for _, s := range ss {
		r := m.recs.rec(s)
		id := m.recs.id(s)
		if r.flags&recLongID == 0 && len(id) > 0 {
			at := len(buf)
			buf = append(buf, id...)
			id = unsafe.String(&buf[at], len(id))
		}
		dst = append(dst, m.delivery(s, id))
	}
	return dst
}

// orderedHead returns q's endpoint's oldest unfinished delivery if it is pending, or
// false if that delivery is in flight. It scans the endpoint's pending deliveries and
// the leases: the documented cost of strict ordering in the memory store.
func (m *MemoryStore) orderedHead(q *epQueue) (slot, bool) {
	var head slot
	found := false
	q.items.each(func(s slot) {
		if !found || m.recs.id(s) < m.recs.id(head) {
			head, found = s, true
		}
	})
	if !found {
		return 0, false
	}
	for _, s := range m.leases.s {
		if m.endpointOf(s) == q.id && m.recs.id(s) < m.recs.id(head) {
			return 0, false
		}
	}
	return head, true
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
	// The index is read before taking the lock every Claim and Record contend for (a
	// miss in a large index is the slowest step of a Record), and checked under it.
	// What a first attempt adds to a delivery is made before it too, in one
	// allocation; it is dropped if the delivery has its own.
	hint, hinted := m.byID.peek(p.DeliveryID)
	var first *itemMoreFirst
	if p.Attempt != nil {
		first = new(itemMoreFirst)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := hint, hinted && m.recs.idIs(hint, p.DeliveryID)
	if !ok {
		s, ok = m.byID.get(&m.recs, p.DeliveryID)
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, p.DeliveryID)
	}
	r := m.recs.rec(s)
	if r.state != codeInFlight || m.owners.list[r.owner] != p.Owner {
		return fmt.Errorf("%w: %s", ErrLeaseLost, p.DeliveryID)
	}
	m.leases.remove(&m.recs, int(r.idx))
	m.apply(r, &p, first)
	if p.State == StatePending {
		m.push(s)
	} else {
		m.unfinished.Add(-1)
		if p.State == StateSucceeded {
			m.noteSucceeded(s)
		}
	}
	return nil
}

// apply changes the record as Delivery.Apply changes a Delivery, adding p's attempt to
// the log. Done on the packed fields, it saves the round trip through a Delivery (and
// its ten time conversions) under the lock every worker's Record takes; storetest's
// Record cases hold it to Apply. first, if not nil, is the itemMore to use if it has
// none. The caller holds m.mu.
func (m *MemoryStore) apply(r *memRec, p *RecordParams, first *itemMoreFirst) {
	if a := p.Attempt; a != nil || p.Reason != "" {
		if r.more == 0 {
			// Not x := &itemMore{} first: that allocation is made whether or not first
			// then replaces it (one more per delivery, in BenchmarkDeliver's profile).
			var x *itemMore
			if first != nil {
				first.attempts = first.log[:0:1]
				x = &first.itemMore
			} else {
				x = &itemMore{}
			}
			x.queued = r.created
			r.more = m.newMore(x)
		}
		x := m.mores[r.more]
		if a != nil {
			x.nAttempts++
			x.lastStatus, x.lastError = int32(a.StatusCode), a.Error
			rec := *a
			rec.DeliveryID, rec.Number = p.DeliveryID, len(x.attempts)+1
			x.attempts = append(x.attempts, rec)
		} else {
			x.lastError = p.Reason
		}
	}
	r.state = codeOf(p.State)
	r.owner, r.leaseExp = 0, 0
	r.updated = nanos(p.Now)
	if p.State == StatePending {
		r.next = nanos(p.NextAttemptAt)
	}
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, id string) (Delivery, error) {
	if err := ctx.Err(); err != nil {
		return Delivery{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorbIfAny()
	s, ok := m.byID.get(&m.recs, id)
	if !ok {
		return Delivery{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return m.delivery(s, id), nil
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
	m.absorbIfAny()
	var match []Delivery
	m.recs.each(func(s slot, _ *memRec) {
		if d := m.delivery(s, m.recs.id(s)); ListMatches(p, &d) {
			d.ID = strings.Clone(d.ID) // to outlive the record
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
	m.absorbIfAny()
	s, ok := m.byID.get(&m.recs, id)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	x := m.more(m.recs.rec(s))
	if x == nil {
		return nil, nil
	}
	return slices.Clone(x.attempts), nil
}

// Requeue implements Store.
func (m *MemoryStore) Requeue(ctx context.Context, p RequeueParams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorbIfAny()
	var ss []slot
	if len(p.IDs) > 0 {
		seen := make(map[string]bool, len(p.IDs))
		for _, id := range p.IDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			s, ok := m.byID.get(&m.recs, id)
			if !ok {
				return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			if st := m.recs.rec(s).state.state(); !st.Finished() {
				return 0, fmt.Errorf("%w: %s is %s; only succeeded or failed deliveries can be requeued", ErrInvalidState, id, st)
			}
			ss = append(ss, s)
		}
	} else {
		since := nanos(p.Since)
		m.recs.each(func(s slot, r *memRec) {
			if r.state == codeFailed && r.created >= since && m.endpointOf(s) == p.EndpointID {
				ss = append(ss, s)
			}
		})
	}
	for _, s := range ss {
		d := m.delivery(s, m.recs.id(s)) // prep copies the ID before write changes the record
		d.Requeue(p.Now)
		in := prep(&d)
		m.write(s, &in)
	}
	m.pushAll(ss)
	m.unfinished.Add(int64(len(ss)))
	return len(ss), nil
}

// NextDue implements Store.
func (m *MemoryStore) NextDue(ctx context.Context, exclude []string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	excluded := EndpointSet(exclude)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.absorbIfAny()
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
	walk(m.leases.len(), func(i int) (int64, string) {
		s := m.leases.s[i]
		return m.recs.rec(s).leaseExp, m.endpointOf(s)
	})
	walk(m.ready.Len(), func(i int) (int64, string) {
		q := m.ready.qs[i]
		return q.items.firstDue(&m.recs), q.id
	})
	for id, q := range m.parked {
		if t := q.items.firstDue(&m.recs); !excluded(id) && (best == 0 || t < best) {
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
	// No absorbIfAny: deliveries not yet absorbed are pending, and Prune removes only
	// finished ones.
	var gone []slot
	m.recs.each(func(s slot, r *memRec) {
		if r.state != codeSucceeded && r.state != codeFailed {
			return
		}
		if d := m.delivery(s, ""); PruneMatches(p, &d) {
			gone = append(gone, s)
		}
	})
	for _, s := range gone {
		m.remove(s)
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
	run  []slot // sorted; run[head:] are queued, with idx -1
	head int
	rest slotHeap // the others, with idx their place in it
}

func (q *dueQueue) len() int { return len(q.run) - q.head + q.rest.len() }

// restFirst reports whether the earliest delivery is in the heap; q must not be empty.
func (q *dueQueue) restFirst(t *recTable) bool {
	return q.head == len(q.run) || (q.rest.len() > 0 && dueBefore(t, q.rest.s[0], q.run[q.head]))
}

// firstDue returns the earliest delivery's due time; q must not be empty.
func (q *dueQueue) firstDue(t *recTable) int64 { return t.rec(q.first(t)).next }

// first returns the earliest delivery; q must not be empty.
func (q *dueQueue) first(t *recTable) slot {
	if q.restFirst(t) {
		return q.rest.s[0]
	}
	return q.run[q.head]
}

func (q *dueQueue) push(t *recTable, s slot) {
	if n := len(q.run); n > q.head && dueBefore(t, s, q.run[n-1]) {
		if q.rest.less == nil {
			q.rest.less = dueBefore
		}
		q.rest.push(t, s)
		return
	}
	t.rec(s).idx = -1
	q.run = append(q.run, s)
}

// pop removes and returns the earliest delivery; q must not be empty.
func (q *dueQueue) pop(t *recTable) slot {
	if q.restFirst(t) {
		return q.rest.pop(t)
	}
	s := q.run[q.head]
	q.head++
	q.compact()
	return s
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
		q.run, q.head = q.run[:n], 0
	}
}

// remove takes s, which must be queued in q, out of q.
func (q *dueQueue) remove(t *recTable, s slot) {
	if idx := t.rec(s).idx; idx >= 0 {
		q.rest.remove(t, int(idx))
		return
	}
	i := slices.Index(q.run[q.head:], s) + q.head
	copy(q.run[i:], q.run[i+1:])
	q.run = q.run[:len(q.run)-1]
	q.compact()
}

// each calls fn for every queued delivery, in no particular order.
func (q *dueQueue) each(fn func(slot)) {
	for _, s := range q.run[q.head:] {
		fn(s)
	}
	for _, s := range q.rest.s {
		fn(s)
	}
}

// slotHeap is a binary heap of records by less, each record's idx its place in it. Not
// container/heap, whose Push and Pop box each slot in an interface (an allocation).
type slotHeap struct {
	s    []slot
	less func(t *recTable, a, b slot) bool
}

func (h *slotHeap) len() int { return len(h.s) }

func (h *slotHeap) set(t *recTable, i int, s slot) {
	h.s[i] = s
	t.rec(s).idx = int32(i)
}

func (h *slotHeap) up(t *recTable, i int) {
	s := h.s[i]
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(t, s, h.s[p]) {
			break
		}
		h.set(t, i, h.s[p])
		i = p
	}
	h.set(t, i, s)
}

// down moves h.s[i] down to its place and reports whether it moved.
func (h *slotHeap) down(t *recTable, i int) bool {
	s, start, n := h.s[i], i, len(h.s)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h.less(t, h.s[r], h.s[c]) {
			c = r
		}
		if !h.less(t, h.s[c], s) {
			break
		}
		h.set(t, i, h.s[c])
		i = c
	}
	h.set(t, i, s)
	return i > start
}

func (h *slotHeap) push(t *recTable, s slot) {
	h.s = append(h.s, s)
	h.up(t, len(h.s)-1)
}

func (h *slotHeap) pop(t *recTable) slot { return h.remove(t, 0) }

// remove takes out and returns h.s[i].
func (h *slotHeap) remove(t *recTable, i int) slot {
	s, last := h.s[i], len(h.s)-1
	if i != last {
		h.set(t, i, h.s[last])
	}
	h.s = h.s[:last]
	if i != last && !h.down(t, i) {
		h.up(t, i)
	}
	return s
}

// epQueue is one endpoint's pending deliveries.
type epQueue struct {
	id     string
	items  dueQueue
	idx    int  // position in MemoryStore.ready, unless parked
	parked bool // in MemoryStore.parked instead of ready
}

// epHeap orders endpoint queues by their earliest due delivery.
type epHeap struct {
	qs []*epQueue
	r  *recTable
}

func (h *epHeap) Len() int { return len(h.qs) }
func (h *epHeap) Less(i, j int) bool {
	return h.qs[i].items.firstDue(h.r) < h.qs[j].items.firstDue(h.r)
}
func (h *epHeap) Swap(i, j int) {
	h.qs[i], h.qs[j] = h.qs[j], h.qs[i]
	h.qs[i].idx = i
	h.qs[j].idx = j
}
func (h *epHeap) Push(x any) { q := x.(*epQueue); q.idx = len(h.qs); h.qs = append(h.qs, q) }
func (h *epHeap) Pop() any {
	q := h.qs[len(h.qs)-1]
	h.qs[len(h.qs)-1] = nil
	h.qs = h.qs[:len(h.qs)-1]
	return q
}
