package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

var attemptsTests = []subtest{
	{"InOrderAcrossRetries", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(time.Hour)))
		want := []store.Attempt{
			{StartedAt: at(0), Duration: 1500 * time.Millisecond, StatusCode: 503,
				Error: "unexpected status 503", ResponseBody: []byte("busy\x00\xff")},
			{StartedAt: at(time.Minute + 250*time.Microsecond), Duration: 30 * time.Second,
				Error: "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"},
			{StartedAt: at(5 * time.Minute), Duration: 42 * time.Microsecond, StatusCode: 200,
				ResponseBody: []byte(`{"ok":true}`)},
		}
		states := []store.State{store.StatePending, store.StatePending, store.StateSucceeded}
		next := []time.Time{at(time.Minute), at(5 * time.Minute), {}}
		for i, a := range want {
			require.Equal(t, []string{id(1)}, IDs(claim(t, s, a.StartedAt, "owner-1")), "claim for attempt %d", i+1)
			require.NoError(t, s.Record(t.Context(), store.RecordParams{
				DeliveryID: id(1), Owner: "owner-1", Now: a.StartedAt.Add(a.Duration),
				Attempt: &a, State: states[i], NextAttemptAt: next[i],
			}), "Record of attempt %d", i+1)
		}

		got, err := s.Attempts(t.Context(), id(1))
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i, w := range want {
			g := got[i]
			assert.Equal(t, id(1), g.DeliveryID, "attempt %d DeliveryID", i+1)
			assert.Equal(t, i+1, g.Number, "attempt %d Number", i+1)
			assertTime(t, w.StartedAt, g.StartedAt, fmt.Sprintf("attempt %d StartedAt", i+1))
			assert.Equal(t, w.Duration, g.Duration, "attempt %d Duration", i+1)
			assert.Equal(t, w.StatusCode, g.StatusCode, "attempt %d StatusCode", i+1)
			assert.Equal(t, w.Error, g.Error, "attempt %d Error", i+1)
			assertBytes(t, w.ResponseBody, g.ResponseBody, fmt.Sprintf("attempt %d ResponseBody", i+1))
		}
		d := get(t, s, id(1))
		assert.Equal(t, 3, d.Attempts, "Attempts")
		assert.Equal(t, 200, d.LastStatus, "LastStatus")

		none, err := s.Attempts(t.Context(), id(2))
		require.NoError(t, err)
		assert.Empty(t, none, "attempts of a delivery never tried")
	}},
	{"Missing", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)))
		_, err := s.Attempts(t.Context(), id(2))
		assert.ErrorIs(t, err, store.ErrNotFound)
	}},
}

var listTests = []subtest{
	{"Filters", testListFilters},
	{"Pagination", testListPagination},
	{"DefaultLimit", func(t *testing.T, s store.Store) {
		n := store.DefaultListLimit + 5
		ds := make([]store.Delivery, n)
		for i := range ds {
			ds[i] = Delivery(id(i), "ep_a", at(0))
		}
		enqueue(t, s, ds...)
		first, err := s.List(t.Context(), store.ListParams{})
		require.NoError(t, err)
		assert.Len(t, first.Deliveries, store.DefaultListLimit, "first page with Limit 0")
		require.NotEmpty(t, first.Next, "Next of a page with more to come")
		rest, err := s.List(t.Context(), store.ListParams{Cursor: first.Next})
		require.NoError(t, err)
		assert.Equal(t, []string{id(n - 5), id(n - 4), id(n - 3), id(n - 2), id(n - 1)}, IDs(rest.Deliveries))
		assert.Empty(t, rest.Next, "Next of the last page")
	}},
}

func testListFilters(t *testing.T, s store.Store) {
	// Ten deliveries created a minute apart, enqueued in reverse ID order; odd ones to
	// ep_a, even ones to ep_b; 1-4 of event evt_x; 1 and 2 succeed, 3 and 4 fail, 9 is in
	// flight, the rest pending.
	var ds []store.Delivery
	for i := 10; i >= 1; i-- {
		ep := "ep_b"
		if i%2 == 1 {
			ep = "ep_a"
		}
		due := at(24 * time.Hour)
		if i <= 4 {
			due = at(time.Hour)
		} else if i == 9 {
			due = at(2 * time.Hour)
		}
		d := Delivery(id(i), ep, due)
		d.CreatedAt = at(time.Duration(i) * time.Minute)
		if i <= 4 {
			d.EventID = "evt_x"
		}
		ds = append(ds, d)
	}
	enqueue(t, s, ds...)
	settle(t, s, at(time.Hour), map[string]store.State{
		id(1): store.StateSucceeded, id(2): store.StateSucceeded,
		id(3): store.StateFailed, id(4): store.StateFailed,
	})
	require.Len(t, claim(t, s, at(2*time.Hour), "owner-1"), 1)

	list := func(is ...int) []string {
		out := make([]string, len(is))
		for i, n := range is {
			out[i] = id(n)
		}
		return out
	}
	created := func(i int) time.Time { return at(time.Duration(i) * time.Minute) }
	tests := []struct {
		name string
		p    store.ListParams
		want []string
	}{
		{"All", store.ListParams{}, list(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)},
		{"EndpointID", store.ListParams{EndpointID: "ep_a"}, list(1, 3, 5, 7, 9)},
		{"EventID", store.ListParams{EventID: "evt_x"}, list(1, 2, 3, 4)},
		{"EventIDOfOne", store.ListParams{EventID: "evt_" + id(7)}, list(7)},
		{"StatePending", store.ListParams{State: store.StatePending}, list(5, 6, 7, 8, 10)},
		{"StateInFlight", store.ListParams{State: store.StateInFlight}, list(9)},
		{"StateSucceeded", store.ListParams{State: store.StateSucceeded}, list(1, 2)},
		{"StateFailed", store.ListParams{State: store.StateFailed}, list(3, 4)},
		{"CreatedAfterInclusive", store.ListParams{CreatedAfter: created(4)}, list(4, 5, 6, 7, 8, 9, 10)},
		{"CreatedBeforeExclusive", store.ListParams{CreatedBefore: created(4)}, list(1, 2, 3)},
		{"CreatedBetween", store.ListParams{CreatedAfter: created(3), CreatedBefore: created(8)}, list(3, 4, 5, 6, 7)},
		{"Combined", store.ListParams{EndpointID: "ep_a", CreatedAfter: created(3), CreatedBefore: created(8)}, list(3, 5, 7)},
		{"EndpointAndState", store.ListParams{EndpointID: "ep_b", State: store.StateFailed}, list(4)},
		{"Cursor", store.ListParams{EndpointID: "ep_b", Cursor: id(4)}, list(6, 8, 10)},
		{"NoMatch", store.ListParams{EndpointID: "ep_none"}, nil},
		{"EmptyRange", store.ListParams{CreatedAfter: created(5), CreatedBefore: created(5)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.List(t.Context(), tt.p)
			require.NoError(t, err)
			assert.Equal(t, tt.want, IDs(res.Deliveries))
			assert.Empty(t, res.Next, "Next of the only page")
		})
	}

	// Listed deliveries carry their fields, not just their IDs.
	res, err := s.List(t.Context(), store.ListParams{State: store.StateInFlight})
	require.NoError(t, err)
	require.Len(t, res.Deliveries, 1)
	assertDelivery(t, get(t, s, id(9)), res.Deliveries[0])
}

func testListPagination(t *testing.T, s store.Store) {
	var ds []store.Delivery
	for i := range 25 {
		ep := "ep_a"
		if i%5 == 0 {
			ep = "ep_b"
		}
		ds = append(ds, Delivery(id(i), ep, at(time.Duration(i)*time.Second)))
	}
	// Enqueued in an order unlike ID order, in two batches.
	slices.Reverse(ds)
	enqueue(t, s, ds[10:]...)
	enqueue(t, s, ds[:10]...)
	var all, epB []string
	for i := range 25 {
		all = append(all, id(i))
		if i%5 == 0 {
			epB = append(epB, id(i))
		}
	}

	tests := []struct {
		name  string
		p     store.ListParams
		want  []string
		pages []int // page sizes
	}{
		{"Partial", store.ListParams{Limit: 10}, all, []int{10, 10, 5}},
		{"Exact", store.ListParams{Limit: 5}, all, []int{5, 5, 5, 5, 5}},
		{"One", store.ListParams{Limit: 1, EndpointID: "ep_b"}, epB, []int{1, 1, 1, 1, 1}},
		{"Filtered", store.ListParams{Limit: 2, EndpointID: "ep_b"}, epB, []int{2, 2, 1}},
		{"Whole", store.ListParams{Limit: 25}, all, []int{25}},
		{"Larger", store.ListParams{Limit: 1000}, all, []int{25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			var got []string
			var sizes []int
			for page := 0; ; page++ {
				require.Less(t, page, 100, "List never returned an empty Next")
				res, err := s.List(t.Context(), p)
				require.NoError(t, err)
				got = append(got, IDs(res.Deliveries)...)
				sizes = append(sizes, len(res.Deliveries))
				if res.Next == "" {
					break
				}
				p.Cursor = res.Next
			}
			assert.Equal(t, tt.want, got, "every match exactly once, in ID order")
			assert.Equal(t, tt.pages, sizes, "page sizes (Next must be empty on the last page)")
		})
	}
	assert.Equal(t, all, listAll(t, s, store.ListParams{Limit: 3}))
}
