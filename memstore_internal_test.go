package webhook

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pendingDelivery is a pending delivery for endpoint "ep", created and due at at, as
// Send makes one. (storetest.Delivery is the same for other packages; it cannot be
// imported here.)
func pendingDelivery(id string, at time.Time) Delivery {
	return Delivery{ID: id, EventID: "evt", EventType: "t", EndpointID: "ep", Body: []byte(`{}`),
		State: StatePending, CreatedAt: at, QueuedAt: at, NextAttemptAt: at, UpdatedAt: at}
}

// checkDueQueue fails t unless q's run is sorted, every run item has idx -1 and every
// heap item has idx its place in the heap.
func checkDueQueue(t *testing.T, q *dueQueue) {
	t.Helper()
	live := q.run[q.head:]
	require.True(t, slices.IsSortedFunc(live, dueCompare), "the run is out of order")
	for _, it := range live {
		require.EqualValues(t, -1, it.idx, "a run item's idx")
	}
	for i, it := range q.rest {
		require.EqualValues(t, i, it.idx, "a heap item's idx")
	}
	for _, it := range q.run[:q.head] {
		require.Nil(t, it, "a taken run slot still holds its item")
	}
}

// The queue gives deliveries back in due order, then ID, whatever order they were
// pushed in and whichever are removed from the middle: checked against a sorted model
// over random operations, with mostly ordered pushes (as Send makes them) and some not.
func TestDueQueueKeepsDueOrderAgainstAModel(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		var q dueQueue
		var model []*memItem
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
				it := &memItem{id: fmt.Sprintf("dlv_%06d", r.IntN(1_000_000)), next: next}
				q.push(it)
				model = append(model, it)
			case op < 9: // pop
				if len(model) == 0 {
					continue
				}
				slices.SortStableFunc(model, dueCompare)
				got := q.pop()
				require.Zero(t, dueCompare(model[0], got), "seed %d: popped %s@%d, want %s@%d", seed, got.id, got.next, model[0].id, model[0].next)
				model = slices.DeleteFunc(model, func(it *memItem) bool { return it == got })
			default: // remove one from anywhere
				if len(model) == 0 {
					continue
				}
				it := model[r.IntN(len(model))]
				q.remove(it)
				model = slices.DeleteFunc(model, func(x *memItem) bool { return x == it })
			}
			require.Equal(t, len(model), q.len())
			if len(model) > 0 {
				slices.SortStableFunc(model, dueCompare)
				require.Zero(t, dueCompare(model[0], q.first()), "seed %d: first", seed)
			}
			checkDueQueue(t, &q)
		}
		var seen []*memItem
		q.each(func(it *memItem) { seen = append(seen, it) })
		assert.ElementsMatch(t, model, seen, "each visits every queued item once")
	}
}

// A queue that never empties (a backlog with Sends arriving as fast as claims take
// them) keeps its array near the backlog's size: the taken head is dropped, not carried.
func TestDueQueueDoesNotGrowUnderSteadyUse(t *testing.T) {
	var q dueQueue
	n := int64(0)
	push := func() { n++; q.push(&memItem{id: fmt.Sprintf("dlv_%09d", n), next: n}) }
	for range 100 {
		push()
	}
	for range 100_000 {
		push()
		require.Equal(t, fmt.Sprintf("dlv_%09d", n-100), q.pop().id)
	}
	assert.Equal(t, 100, q.len())
	assert.Empty(t, q.rest, "in-order pushes all join the run")
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
	assert.Empty(t, q.items.rest, "deliveries that went to the heap")
	checkDueQueue(t, &q.items)
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
			if id := fmt.Sprintf("dlv_%s%04d", prefix, i); m.byID.shard(id)%len(m.intake) == sh {
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
	assert.Empty(t, q.items.rest, "deliveries that went to the heap")
	checkDueQueue(t, &q.items)
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
