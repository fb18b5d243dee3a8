package webhook

import (
	"cmp"
	"slices"
)

// memQueue is one endpoint's pending deliveries, a heap by due time then ID.
type memQueue struct {
	endpointID string
	items      []*memItem
	index      int // in MemoryStore.ready
}

func (q *memQueue) Len() int           { return len(q.items) }
func (q *memQueue) Less(i, j int) bool { return dueBefore(q.items[i], q.items[j]) }
func (q *memQueue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	q.items[i].index, q.items[j].index = int32(i), int32(j)
}
func (q *memQueue) Push(x any) {
	it := x.(*memItem)
	it.index = int32(len(q.items))
	q.items = append(q.items, it)
}

// dueBefore orders pending deliveries by due time, then ID.
func dueBefore(a, b *memItem) bool { return a.next < b.next || (a.next == b.next && a.id() < b.id()) }
func (q *memQueue) Pop() any {
	n := len(q.items) - 1
	it := q.items[n]
	q.items[n] = nil
	q.items = q.items[:n]
	return it
}

// oldest returns the pending delivery with the lowest ID (the queue is not empty).
func (q *memQueue) oldest() *memItem {
	return slices.MinFunc(q.items, func(a, b *memItem) int { return cmp.Compare(a.id(), b.id()) })
}

// queueHeap orders endpoint queues by their earliest due delivery.
type queueHeap []*memQueue

func (h queueHeap) Len() int           { return len(h) }
func (h queueHeap) Less(i, j int) bool { return dueBefore(h[i].items[0], h[j].items[0]) }
func (h queueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *queueHeap) Push(x any) {
	q := x.(*memQueue)
	q.index = len(*h)
	*h = append(*h, q)
}
func (h *queueHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return q
}

// leaseHeap orders in-flight deliveries by lease expiry.
type leaseHeap []*memItem

func (h leaseHeap) Len() int           { return len(h) }
func (h leaseHeap) Less(i, j int) bool { return h[i].leaseExp < h[j].leaseExp }
func (h leaseHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}
func (h *leaseHeap) Push(x any) {
	it := x.(*memItem)
	it.index = int32(len(*h))
	*h = append(*h, it)
}
func (h *leaseHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
