package webhook

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pendingDelivery is a pending delivery for endpoint "ep", created and due at at, as
// Send makes one: its event ID is the body's bytes. (storetest.Delivery is much the
// same for other packages, with an event ID of its own; it cannot be imported here.)
func pendingDelivery(id string, at time.Time) Delivery {
	body := []byte(`{"id":"evt","data":{}}`)
	return Delivery{ID: id, EventID: unsafe.String(&body[7], 3), EventType: "t", EndpointID: "ep", Body: body,
		State: StatePending, CreatedAt: at, QueuedAt: at, NextAttemptAt: at, UpdatedAt: at}
}

// checkDueQueue fails t unless q's run is sorted, every run record has idx -1 and every
// heap record has idx its place in the heap.
func checkDueQueue(t *testing.T, r *recTable, q *dueQueue) {
	t.Helper()
	live := q.run[q.head:]
	require.True(t, slices.IsSortedFunc(live, r.dueCompare), "the run is out of order")
	for _, s := range live {
		require.EqualValues(t, -1, r.rec(s).idx, "a run record's idx")
	}
	for i, s := range q.rest.s {
		require.EqualValues(t, i, r.rec(s).idx, "a heap record's idx")
	}
}

// testRec stores a record with this ID and due time in r.
func testRec(r *recTable, id string, next int64) slot {
	s := r.alloc()
	rec := r.rec(s)
	rec.idLen, rec.next = uint8(copy(rec.idBuf[:], id)), next
	return s
}

// The queue gives deliveries back in due order, then ID, whatever order they were
// pushed in and whichever are removed from the middle: checked against a sorted model
// over random operations, with mostly ordered pushes (as Send makes them) and some not.
func TestDueQueueKeepsDueOrderAgainstAModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		var q dueQueue
		var recs recTable
		var model []slot
		cmpDue := recs.dueCompare
		clock, serial := int64(1000), 0
		for range 3000 {
			switch op := r.IntN(10); {
			case op < 5: // push, usually in order
				serial++
				next := clock
				if r.IntN(4) == 0 {
					next = clock - int64(r.IntN(50)) + int64(r.IntN(100)) // a retry, or a late Send
				} else {
					clock += int64(r.IntN(3)) // ties too
				}
				it := testRec(&recs, fmt.Sprintf("dlv_%06d", r.IntN(1_000_000)), next)
				q.push(&recs, it)
				model = append(model, it)
			case op < 9: // pop
				if len(model) == 0 {
					continue
				}
				slices.SortStableFunc(model, cmpDue)
				got := q.pop(&recs)
				require.Zero(t, cmpDue(model[0], got), "seed %d: popped %s@%d, want %s@%d", seed,
					recs.id(got), recs.rec(got).next, recs.id(model[0]), recs.rec(model[0]).next)
				model = slices.DeleteFunc(model, func(it slot) bool { return it == got })
			default: // remove one from anywhere
				if len(model) == 0 {
					continue
				}
				it := model[r.IntN(len(model))]
				q.remove(&recs, it)
				model = slices.DeleteFunc(model, func(x slot) bool { return x == it })
			}
			require.Equal(t, len(model), q.len())
			if len(model) > 0 {
				slices.SortStableFunc(model, cmpDue)
				require.Zero(t, cmpDue(model[0], q.first(&recs)), "seed %d: first", seed)
			}
			checkDueQueue(t, &recs, &q)
		}
		var seen []slot
		q.each(func(it slot) { seen = append(seen, it) })
		assert.ElementsMatch(t, model, seen, "each visits every queued item once")
	}
}

// A queue that never empties (a backlog with Sends arriving as fast as claims take
// them) keeps its array near the backlog's size: the taken head is dropped, not carried.
func TestDueQueueDoesNotGrowUnderSteadyUse(t *testing.T) {
	var q dueQueue
	var recs recTable
	n := int64(0)
	push := func() { n++; q.push(&recs, testRec(&recs, fmt.Sprintf("dlv_%09d", n), n)) }
	for range 100 {
		push()
	}
	for range 100_000 {
		push()
		s := q.pop(&recs)
		require.Equal(t, fmt.Sprintf("dlv_%09d", n-100), recs.id(s))
		recs.release(s)
	}
	assert.Equal(t, 100, q.len())
	assert.Zero(t, q.rest.len(), "in-order pushes all join the run")
	assert.LessOrEqual(t, cap(q.run), 512, "the run's array after 100,000 pushes and pops with 100 queued")
}

// Sends from many callers land in different intake shards, so an absorb sees them out
// of time order; it sorts them, and the whole backlog joins its endpoint's run, none
// the heap (which a claim would pop at O(log n) each).
func TestMemoryAbsorbPutsABacklogInTheRun(t *testing.T) {
	m := NewMemoryStore(-1)
	base := time.Unix(1_700_000_000, 0)
	const n = 2000
	for i := range n {
		d := pendingDelivery(fmt.Sprintf("dlv_%06d", i), base.Add(time.Duration(i)*time.Microsecond))
		require.NoError(t, m.enqueueFresh(t.Context(), []Delivery{d}))
	}
	m.mu.Lock()
	m.absorb()
	q := m.queues["ep"]
	require.NotNil(t, q)
	assert.Equal(t, n, q.items.len())
	assert.Zero(t, q.items.rest.len(), "deliveries that went to the heap")
	checkDueQueue(t, &m.recs, &q.items)
	m.mu.Unlock()

	got, err := m.Claim(t.Context(), ClaimParams{Now: base.Add(time.Hour), Limit: n, Owner: "o", LeaseUntil: base.Add(2 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, got, n)
	for i, d := range got {
		require.Equal(t, fmt.Sprintf("dlv_%06d", i), d.ID, "claims come in due order")
	}
}

// Sends that arrive while an absorb indexes a large batch wait, all of them, for the
// next absorb, which sorts them together: here, while the first shard's items are
// indexed, a later Send lands in a later shard and an earlier one in the first shard.
// Had absorb cut each shard only after indexing the ones before it, the later Send
// would join this batch and the earlier one the next, behind the run's tail: the heap.
func TestMemoryAbsorbCutsEveryShardBeforeIndexing(t *testing.T) {
	m := NewMemoryStore(-1)
	base := time.Unix(1_700_000_000, 0)
	delivery := func(id string, at time.Time) []Delivery { return []Delivery{pendingDelivery(id, at)} }
	// idIn returns an ID that the intake puts in shard sh.
	idIn := func(prefix string, sh int) string {
		for i := 0; ; i++ {
			if id := fmt.Sprintf("dlv_%s%04d", prefix, i); intakeShardOf(id) == sh {
				return id
			}
		}
	}
	for i := range 64 {
		require.NoError(t, m.enqueueFresh(t.Context(), delivery(fmt.Sprintf("dlv_a%04d", i), base.Add(time.Duration(i)*time.Microsecond))))
	}
	sent := false
	m.testHookAbsorbed = func(shard int) {
		if shard != 0 || sent {
			return
		}
		sent = true
		require.NoError(t, m.enqueueFresh(t.Context(), delivery(idIn("late", len(m.intake)-1), base.Add(10*time.Millisecond))))
		require.NoError(t, m.enqueueFresh(t.Context(), delivery(idIn("early", 0), base.Add(5*time.Millisecond))))
	}
	m.mu.Lock()
	m.absorb()
	require.True(t, sent, "the hook ran")
	assert.Equal(t, 64, m.queues["ep"].items.len(), "the Sends made during the absorb wait for the next")
	m.absorb()
	q := m.queues["ep"]
	assert.Equal(t, 66, q.items.len())
	assert.Zero(t, q.items.rest.len(), "deliveries that went to the heap")
	checkDueQueue(t, &m.recs, &q.items)
	m.mu.Unlock()
}

// The memory store keeps its own copy of an ID that fits in the item, so it neither
// keeps the caller's string alive nor depends on it: here the caller's bytes change
// after Enqueue (which a string must never do; it stands in for the store holding on
// to memory it was handed), and the store still finds and reports the ID it was given.
// An ID too long to fit is kept as it is.
func TestMemoryStoreCopiesTheIDsItKeeps(t *testing.T) {
	m := NewMemoryStore(-1)
	now := time.Unix(1_700_000_000, 0)
	for _, n := range []int{1, 30, 32} {
		raw := []byte(strings.Repeat("x", n-1) + "1")
		id := unsafe.String(&raw[0], len(raw))
		want := strings.Clone(id)
		require.NoError(t, m.enqueueFresh(t.Context(), []Delivery{pendingDelivery(id, now)}))
		raw[n-1] = '2'
		got, err := m.Get(t.Context(), want)
		require.NoError(t, err, "%d-byte ID", n)
		assert.Equal(t, want, got.ID)
	}
	long := strings.Repeat("y", 40)
	require.NoError(t, m.Enqueue(t.Context(), []Delivery{pendingDelivery(long, now)}))
	got, err := m.Get(t.Context(), long)
	require.NoError(t, err)
	assert.Equal(t, long, got.ID)
}

// newOneDeliveryID makes one allocation for the slice and the ID, and its ID is a
// delivery ID like newDeliveryIDs' (well formed, later than those made before it).
func TestNewOneDeliveryID(t *testing.T) {
	now := time.Now()
	before := newDeliveryIDs(1, now)[0]
	ids := newOneDeliveryID(now)
	require.Len(t, ids, 1)
	assert.Regexp(t, `^dlv_[0-7][0-9A-HJKMNP-TV-Z]{25}$`, ids[0])
	assert.Greater(t, ids[0], before)
	assert.Greater(t, newDeliveryIDs(1, now)[0], ids[0])
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { ids = newOneDeliveryID(now) }))
}

// A record holds no pointers, and a chunk's bodies come before its records, so the
// collector scans only the bodies' slice headers of a chunk: what keeps a backlog of a
// million from costing the host process a hundred milliseconds of marking per cycle.
func TestMemRecHoldsNoPointers(t *testing.T) {
	var walk func(t reflect.Type) []string
	walk = func(typ reflect.Type) []string {
		switch typ.Kind() {
		case reflect.Pointer, reflect.UnsafePointer, reflect.Slice, reflect.String, reflect.Map,
			reflect.Chan, reflect.Func, reflect.Interface:
			return []string{typ.String()}
		case reflect.Array:
			return walk(typ.Elem())
		case reflect.Struct:
			var found []string
			for i := range typ.NumField() {
				for _, p := range walk(typ.Field(i).Type) {
					found = append(found, typ.Field(i).Name+": "+p)
				}
			}
			return found
		}
		return nil
	}
	assert.Empty(t, walk(reflect.TypeFor[memRec]()), "pointer fields of memRec")
	var ch recChunk
	assert.Less(t, unsafe.Offsetof(ch.bodies), unsafe.Offsetof(ch.recs), "the bodies come first")
	assert.Empty(t, walk(reflect.TypeFor[[2]uint64]()), "the walk itself: an array of numbers")
	assert.NotEmpty(t, walk(reflect.TypeFor[recChunk]()), "the walk itself: a chunk has bodies")
}

// With every ID hashed alike, all but one of a shard's IDs go to its dup map; each is
// still found, refused a second time (reserved, in the map, in dup) and removed alone.
func TestIDIndexKeepsCollidingIDsApart(t *testing.T) {
	m := NewMemoryStoreForTests(-1, 0, maxInterned)
	now := time.Unix(1_700_000_000, 0)
	var ids []string
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("dlv_%04d", i))
		require.NoError(t, m.Enqueue(t.Context(), []Delivery{pendingDelivery(ids[i], now)}))
	}
	require.Len(t, m.byID.sh[0].reserved, 50, "reserved until an absorb")
	assert.ErrorIs(t, m.Enqueue(t.Context(), []Delivery{pendingDelivery(ids[3], now)}), ErrDuplicateDelivery, "a reserved one")
	m.mu.Lock()
	m.absorb()
	m.mu.Unlock()
	require.Len(t, m.byID.sh[0].m, 1)
	require.Len(t, m.byID.sh[0].dup, 49)
	require.Empty(t, m.byID.sh[0].reserved)
	assert.ErrorIs(t, m.Enqueue(t.Context(), []Delivery{pendingDelivery(ids[0], now)}), ErrDuplicateDelivery, "the one in the map")
	assert.ErrorIs(t, m.Enqueue(t.Context(), []Delivery{pendingDelivery(ids[7], now)}), ErrDuplicateDelivery, "one in dup")
	got, err := m.Claim(t.Context(), ClaimParams{Now: now, Limit: 50, Owner: "o", LeaseUntil: now.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, got, 50)
	for _, d := range got {
		require.NoError(t, m.Record(t.Context(), RecordParams{DeliveryID: d.ID, Owner: "o", Now: now, State: StateSucceeded}))
	}
	n, err := m.Prune(t.Context(), PruneParams{SucceededBefore: now.Add(time.Second)})
	require.NoError(t, err)
	assert.Equal(t, 50, n)
	assert.Empty(t, m.byID.sh[0].m)
	assert.Empty(t, m.byID.sh[0].dup)
}

// drainAll claims every due delivery and records it succeeded.
func drainAll(t *testing.T, m *MemoryStore, now time.Time) []Delivery {
	t.Helper()
	var all []Delivery
	for {
		got, err := m.Claim(t.Context(), ClaimParams{Now: now, Limit: 500, Owner: "o", LeaseUntil: now.Add(time.Hour)})
		require.NoError(t, err)
		if len(got) == 0 {
			return all
		}
		for _, d := range got {
			require.NoError(t, m.Record(t.Context(), RecordParams{DeliveryID: d.ID, Owner: "o", Now: now, State: StateSucceeded,
				Attempt: &Attempt{StartedAt: now, StatusCode: 204}}))
		}
		all = append(all, got...)
	}
}

// Once a backlog has drained and its deliveries are gone, the store gives its chunks of
// records back (all but the first), and takes new ones when it needs them again.
func TestMemoryStoreGivesBackTheChunksOfADrainedBacklog(t *testing.T) {
	m := NewMemoryStore(-1)
	now := time.Unix(1_700_000_000, 0)
	live := func() int {
		n := 0
		for _, ch := range m.recs.chunks {
			if ch != nil {
				n++
			}
		}
		return n
	}
	for round := range 3 {
		const n = 10 * recChunkLen
		for i := range n {
			require.NoError(t, m.enqueueFresh(t.Context(), []Delivery{pendingDelivery(fmt.Sprintf("dlv_%d_%06d", round, i), now)}))
		}
		require.Len(t, drainAll(t, m, now), n)
		require.Equal(t, 10, live(), "round %d: chunks holding the drained backlog", round)
		pruned, err := m.Prune(t.Context(), PruneParams{SucceededBefore: now.Add(time.Second)})
		require.NoError(t, err)
		require.Equal(t, n, pruned)
		assert.Equal(t, 1, live(), "round %d: chunks after the prune", round)
		assert.Len(t, m.recs.chunks, 1, "round %d: the table's length", round)
	}
}

// A succeeded delivery's record is dropped past the store's capacity and its slot taken
// by another; what was handed out before (ID, event ID, body, attempts) does not change.
func TestMemoryStoreHandsOutDeliveriesThatOutliveTheirSlot(t *testing.T) {
	m := NewMemoryStore(4)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_early","x":1}`)
	early := pendingDelivery("dlv_early", now)
	early.Body, early.EventID = body, unsafe.String(&body[7], len("evt_early"))
	require.NoError(t, m.enqueueFresh(t.Context(), []Delivery{early}))
	got := drainAll(t, m, now)
	require.Len(t, got, 1)
	assert.Same(t, &body[7], unsafe.StringData(got[0].EventID), "an event ID in the body is handed out as the body's bytes")
	attempts, err := m.Attempts(t.Context(), "dlv_early")
	require.NoError(t, err)
	slotOfEarly, ok := m.byID.get(&m.recs, "dlv_early")
	require.True(t, ok, "the early one's slot")
	for i := range 20 { // the early one drops out and its slot is reused
		require.NoError(t, m.enqueueFresh(t.Context(), []Delivery{pendingDelivery(fmt.Sprintf("dlv_late_%02d", i), now)}))
		drainAll(t, m, now)
	}
	_, err = m.Get(t.Context(), "dlv_early")
	require.ErrorIs(t, err, ErrNotFound, "dropped past the capacity of succeeded deliveries")
	require.NotNil(t, m.recs.at(slotOfEarly), "the early one's chunk")
	assert.True(t, strings.HasPrefix(m.recs.id(slotOfEarly), "dlv_late_"), "the early one's slot now holds %q", m.recs.id(slotOfEarly))
	assert.Equal(t, "dlv_early", got[0].ID)
	assert.Equal(t, "evt_early", got[0].EventID)
	assert.Equal(t, `{"id":"evt_early","x":1}`, string(got[0].Body))
	require.Len(t, attempts, 1)
	assert.Equal(t, "dlv_early", attempts[0].DeliveryID)
}

// A requeue that leaves nothing but the attempt log set (an attempt with no status or
// error, requeued at its creation time, the event ID in the body as a Sender's is)
// still resets the attempt count.
func TestMemoryRequeueResetsAnAttemptWithNothingElse(t *testing.T) {
	m := NewMemoryStore(-1)
	now := time.Unix(1_700_000_000, 0)
	d0 := pendingDelivery("dlv_1", now)
	d0.Body = []byte(`{"id":"evt_1"}`)
	d0.EventID = unsafe.String(&d0.Body[7], len("evt_1"))
	require.NoError(t, m.Enqueue(t.Context(), []Delivery{d0}))
	got, err := m.Claim(t.Context(), ClaimParams{Now: now, Limit: 1, Owner: "o", LeaseUntil: now.Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.NoError(t, m.Record(t.Context(), RecordParams{DeliveryID: "dlv_1", Owner: "o", Now: now, State: StateFailed,
		Attempt: &Attempt{StartedAt: now}}))
	d, err := m.Get(t.Context(), "dlv_1")
	require.NoError(t, err)
	require.Equal(t, 1, d.Attempts)
	n, err := m.Requeue(t.Context(), RequeueParams{Now: now, IDs: []string{"dlv_1"}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d, err = m.Get(t.Context(), "dlv_1")
	require.NoError(t, err)
	assert.Equal(t, StatePending, d.State)
	assert.Zero(t, d.Attempts, "attempts since the requeue")
	as, err := m.Attempts(t.Context(), "dlv_1")
	require.NoError(t, err)
	assert.Len(t, as, 1, "the log is kept")
}

// The memory store against a model of what each delivery must read back as, over
// random operations: Sends and direct Enqueues, claims, retries, successes, failures,
// requeues, prunes and lookups, with few hash bits (IDs collide), tiny intern tables
// (rebuilt over and over), long IDs, event IDs in and out of the body, and a small
// capacity (succeeded deliveries dropped, slots and chunks reused). A record that
// outlived its delivery, or took another's bytes, shows as a wrong read.
func TestMemoryStoreAgainstAModel(t *testing.T) {
	type want struct {
		d        Delivery // the fields the model keeps: ID, EventID, EndpointID, EventType, Body, State, Attempts
		log      int      // attempts in the store's log
		succSeq  int      // which success of the model's this is, while succeeded
		inFlight bool
	}
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 11))
		const capacity = 40
		m := NewMemoryStoreForTests(capacity, 3, 4)
		now := time.Unix(1_700_000_000, 0)
		model := map[string]*want{}
		var succeeded []struct {
			id  string
			seq int
		}
		seq, serial := 0, 0
		unfinished := func() int {
			n := 0
			for _, w := range model {
				if !w.d.State.Finished() {
					n++
				}
			}
			return n
		}
		newDelivery := func() Delivery {
			serial++
			id := fmt.Sprintf("dlv_%06d", serial)
			if r.IntN(10) == 0 {
				id = fmt.Sprintf("dlv_a_long_id_that_does_not_fit_%06d", serial)
			}
			body := fmt.Appendf(nil, `{"id":"evt_%d","n":%d}`, serial, r.IntN(1000))
			ev := unsafe.String(&body[7], len(fmt.Sprint("evt_", serial)))
			if r.IntN(4) == 0 {
				ev = fmt.Sprint("other_", serial) // not in the body
			}
			d := pendingDelivery(id, now)
			d.Body, d.EventID = body, ev
			d.EndpointID = fmt.Sprint("ep_", r.IntN(3))
			d.EventType = fmt.Sprint("type_", r.IntN(5))
			return d
		}
		for step := range 3000 {
			now = now.Add(time.Millisecond)
			switch op := r.IntN(100); {
			case op < 30: // Send or Enqueue
				d := newDelivery()
				var err error
				if r.IntN(2) == 0 {
					err = m.enqueueFresh(t.Context(), []Delivery{d})
				} else {
					err = m.Enqueue(t.Context(), []Delivery{d})
				}
				if unfinished() >= capacity {
					require.ErrorIs(t, err, ErrQueueFull, "step %d", step)
					continue
				}
				require.NoError(t, err, "step %d", step)
				model[d.ID] = &want{d: d}
			case op < 55: // claim, then settle some of what was claimed
				got, err := m.Claim(t.Context(), ClaimParams{Now: now, Limit: 1 + r.IntN(8), Owner: "o", LeaseUntil: now.Add(time.Hour)})
				require.NoError(t, err)
				for _, d := range got {
					w := model[d.ID]
					require.NotNil(t, w, "step %d: claimed %s, which the model does not hold", step, d.ID)
					require.Equal(t, StatePending, w.d.State, "step %d: claimed %s", step, d.ID)
					require.Equal(t, w.d.EventID, d.EventID)
					require.Equal(t, string(w.d.Body), string(d.Body))
					w.d.State, w.inFlight, w.d.UpdatedAt = StateInFlight, true, now
				}
			case op < 80: // record one in flight
				var ids []string
				for id, w := range model {
					if w.inFlight {
						ids = append(ids, id)
					}
				}
				if len(ids) == 0 {
					continue
				}
				slices.Sort(ids)
				id := ids[r.IntN(len(ids))]
				w := model[id]
				state := []State{StatePending, StateSucceeded, StateFailed}[r.IntN(3)]
				p := RecordParams{DeliveryID: id, Owner: "o", Now: now, State: state, NextAttemptAt: now}
				if r.IntN(5) > 0 {
					p.Attempt = &Attempt{StartedAt: now, StatusCode: 200 + r.IntN(400)}
					w.d.Attempts++
					w.log++
				}
				require.NoError(t, m.Record(t.Context(), p), "step %d: record %s", step, id)
				w.d.State, w.inFlight, w.d.UpdatedAt = state, false, now
				if state == StateSucceeded {
					seq++
					w.succSeq = seq
					succeeded = append(succeeded, struct {
						id  string
						seq int
					}{id, seq})
					live := 0
					for _, e := range succeeded {
						if x := model[e.id]; x != nil && x.succSeq == e.seq && x.d.State == StateSucceeded {
							live++
						}
					}
					for i := 0; live > capacity; i++ { // the oldest past capacity are dropped
						if x := model[succeeded[i].id]; x != nil && x.succSeq == succeeded[i].seq && x.d.State == StateSucceeded {
							delete(model, succeeded[i].id)
							live--
						}
					}
				}
			case op < 88: // requeue a finished one
				var ids []string
				for id, w := range model {
					if w.d.State.Finished() {
						ids = append(ids, id)
					}
				}
				if len(ids) == 0 || unfinished() >= capacity {
					continue
				}
				slices.Sort(ids)
				id := ids[r.IntN(len(ids))]
				n, err := m.Requeue(t.Context(), RequeueParams{Now: now, IDs: []string{id}})
				require.NoError(t, err, "step %d", step)
				require.Equal(t, 1, n)
				w := model[id]
				w.d.State, w.d.Attempts, w.succSeq, w.d.UpdatedAt = StatePending, 0, 0, now
			case op < 92: // prune what finished before a moment in the past
				before := now.Add(-time.Duration(r.IntN(200)) * time.Millisecond)
				_, err := m.Prune(t.Context(), PruneParams{SucceededBefore: before, FailedBefore: before})
				require.NoError(t, err)
				for id, w := range model {
					if w.d.State.Finished() && w.d.UpdatedAt.Before(before) {
						delete(model, id)
					}
				}
			default: // read every delivery back
				for id, w := range model {
					d, err := m.Get(t.Context(), id)
					require.NoError(t, err, "step %d: get %s", step, id)
					require.Equal(t, id, d.ID)
					require.Equal(t, w.d.State, d.State, "step %d: %s", step, id)
					require.Equal(t, w.d.Attempts, d.Attempts, "step %d: %s", step, id)
					require.Equal(t, w.d.EventID, d.EventID, "step %d: %s", step, id)
					require.Equal(t, w.d.EndpointID, d.EndpointID, "step %d: %s", step, id)
					require.Equal(t, w.d.EventType, d.EventType, "step %d: %s", step, id)
					require.Equal(t, string(w.d.Body), string(d.Body), "step %d: %s", step, id)
					require.True(t, w.d.UpdatedAt.Equal(d.UpdatedAt), "step %d: %s updated %s, want %s", step, id, d.UpdatedAt, w.d.UpdatedAt)
					as, err := m.Attempts(t.Context(), id)
					require.NoError(t, err)
					require.Len(t, as, w.log, "step %d: %s's log", step, id)
				}
				res, err := m.List(t.Context(), ListParams{Limit: 10_000})
				require.NoError(t, err)
				require.Len(t, res.Deliveries, len(model), "step %d: List", step)
				require.Equal(t, unfinished(), m.Len(), "step %d: Len", step)
			}
		}
	}
}
