package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

var requeueTests = []subtest{
	{"ByIDs", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(0)),
			Delivery(id(3), "ep_a", at(time.Hour)))
		settle(t, s, at(0), map[string]store.State{id(1): store.StateSucceeded, id(2): store.StateFailed})
		untouched := get(t, s, id(3))

		now := at(10 * time.Minute)
		n, err := s.Requeue(t.Context(), store.RequeueParams{Now: now, IDs: []string{id(1), id(2)}})
		require.NoError(t, err)
		assert.Equal(t, 2, n, "requeued")
		for _, i := range []int{1, 2} {
			d := get(t, s, id(i))
			assert.Equal(t, store.StatePending, d.State, "State of %s", d.ID)
			assert.Zero(t, d.Attempts, "Attempts of %s", d.ID)
			assertTime(t, now, d.QueuedAt, "QueuedAt")
			assertTime(t, now, d.NextAttemptAt, "NextAttemptAt")
			assertTime(t, at(0), d.CreatedAt, "CreatedAt")
			as, err := s.Attempts(t.Context(), d.ID)
			require.NoError(t, err)
			assert.Len(t, as, 1, "attempt log of %s kept", d.ID)
		}
		assertUnchanged(t, s, untouched)

		// A requeued delivery is due at Now, and its next attempt continues the log.
		assert.Empty(t, claim(t, s, now.Add(-time.Microsecond), "owner-1"))
		got := claim(t, s, now, "owner-1")
		require.ElementsMatch(t, []string{id(1), id(2)}, IDs(got))
		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner-1", Now: now,
			Attempt: attempt(now, 200), State: store.StateSucceeded,
		}))
		assert.Equal(t, 1, get(t, s, id(1)).Attempts, "Attempts after requeue and one attempt")
		as, err := s.Attempts(t.Context(), id(1))
		require.NoError(t, err)
		require.Len(t, as, 2)
		assert.Equal(t, []int{1, 2}, []int{as[0].Number, as[1].Number}, "attempt Numbers across a requeue")
	}},
	{"AllOrNone", testRequeueAllOrNone},
	{"ByEndpointSince", func(t *testing.T, s store.Store) {
		since := at(10 * time.Minute)
		mk := func(i int, ep string, created time.Time) store.Delivery {
			d := Delivery(id(i), ep, at(0))
			d.CreatedAt = created
			return d
		}
		enqueue(t, s,
			mk(1, "ep_a", since.Add(-time.Microsecond)), // failed, too old
			mk(2, "ep_a", since),                        // failed: requeued
			mk(3, "ep_a", since.Add(time.Hour)),         // failed: requeued
			mk(4, "ep_a", since.Add(time.Hour)),         // succeeded
			mk(5, "ep_b", since.Add(time.Hour)),         // failed, other endpoint
		)
		settle(t, s, at(0), map[string]store.State{
			id(1): store.StateFailed, id(2): store.StateFailed, id(3): store.StateFailed,
			id(4): store.StateSucceeded, id(5): store.StateFailed,
		})
		later := mk(6, "ep_a", since.Add(time.Hour)) // pending
		later.NextAttemptAt = at(24 * time.Hour)
		inFlight := mk(7, "ep_a", since.Add(time.Hour))
		inFlight.NextAttemptAt = at(time.Second)
		enqueue(t, s, later, inFlight)
		require.Len(t, claim(t, s, at(time.Second), "owner-1"), 1)
		untouched := []store.Delivery{get(t, s, id(1)), get(t, s, id(4)), get(t, s, id(5)), get(t, s, id(6)), get(t, s, id(7))}

		now := at(time.Hour)
		n, err := s.Requeue(t.Context(), store.RequeueParams{Now: now, EndpointID: "ep_a", Since: since})
		require.NoError(t, err)
		assert.Equal(t, 2, n, "requeued")
		for _, i := range []int{2, 3} {
			d := get(t, s, id(i))
			assert.Equal(t, store.StatePending, d.State, "State of %s", d.ID)
			assert.Zero(t, d.Attempts, "Attempts of %s", d.ID)
			assertTime(t, now, d.QueuedAt, "QueuedAt")
			assertTime(t, now, d.NextAttemptAt, "NextAttemptAt")
		}
		assertUnchanged(t, s, untouched...)

		n, err = s.Requeue(t.Context(), store.RequeueParams{Now: now, EndpointID: "ep_a", Since: since})
		require.NoError(t, err)
		assert.Zero(t, n, "requeued again")
		n, err = s.Requeue(t.Context(), store.RequeueParams{Now: now, EndpointID: "ep_none", Since: since})
		require.NoError(t, err)
		assert.Zero(t, n, "requeued of an endpoint without deliveries")
	}},
}

func testRequeueAllOrNone(t *testing.T, s store.Store) {
	enqueue(t, s,
		Delivery(id(1), "ep_a", at(0)),         // succeeded
		Delivery(id(2), "ep_a", at(0)),         // failed
		Delivery(id(3), "ep_a", at(time.Hour)), // pending
		Delivery(id(4), "ep_a", at(time.Second)),
	)
	settle(t, s, at(0), map[string]store.State{id(1): store.StateSucceeded, id(2): store.StateFailed})
	require.Len(t, claim(t, s, at(time.Second), "owner-1"), 1) // id(4) in flight
	before := []store.Delivery{get(t, s, id(1)), get(t, s, id(2)), get(t, s, id(3)), get(t, s, id(4))}

	tests := []struct {
		name string
		ids  []string
		want error
	}{
		{"Pending", []string{id(3)}, store.ErrInvalidState},
		{"InFlight", []string{id(4)}, store.ErrInvalidState},
		{"PendingAmongFinished", []string{id(1), id(3), id(2)}, store.ErrInvalidState},
		{"InFlightLast", []string{id(1), id(2), id(4)}, store.ErrInvalidState},
		{"Missing", []string{id(9)}, store.ErrNotFound},
		{"MissingAmongFinished", []string{id(1), id(9), id(2)}, store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := s.Requeue(t.Context(), store.RequeueParams{Now: at(time.Minute), IDs: tt.ids})
			assert.ErrorIs(t, err, tt.want)
			assert.Zero(t, n, "requeued")
			assertUnchanged(t, s, before...)
		})
	}
}

var nextDueTests = []subtest{
	{"Empty", func(t *testing.T, s store.Store) {
		next, err := s.NextDue(t.Context(), nil)
		require.NoError(t, err)
		assert.True(t, next.IsZero(), "NextDue of an empty store: want zero, got %s", next)
	}},
	{"EarliestPending", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(5*time.Minute)), Delivery(id(2), "ep_b", at(2*time.Minute)),
			Delivery(id(3), "ep_a", at(9*time.Minute)))
		next, err := s.NextDue(t.Context(), nil)
		require.NoError(t, err)
		assertTime(t, at(2*time.Minute), next, "NextDue")
	}},
	{"InFlightLeaseExpiry", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(5*time.Minute)))
		_, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(0), Limit: 1, Owner: "owner-1", LeaseUntil: at(time.Minute),
		})
		require.NoError(t, err)
		next, err := s.NextDue(t.Context(), nil)
		require.NoError(t, err)
		assertTime(t, at(time.Minute), next, "NextDue with a lease expiring first")

		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner-1", Now: at(time.Second),
			Attempt: attempt(at(0), 200), State: store.StateSucceeded,
		}))
		next, err = s.NextDue(t.Context(), nil)
		require.NoError(t, err)
		assertTime(t, at(5*time.Minute), next, "NextDue after the in-flight delivery finished")
	}},
	{"ExcludedEndpoints", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(3*time.Minute)),
			Delivery(id(3), "ep_c", at(7*time.Minute)))
		_, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(0), Limit: 1, Owner: "owner-1", LeaseUntil: at(time.Minute),
		})
		require.NoError(t, err)
		tests := []struct {
			exclude []string
			want    time.Time
		}{
			{nil, at(time.Minute)},
			{[]string{"ep_a"}, at(3 * time.Minute)},
			{[]string{"ep_b"}, at(time.Minute)},
			{[]string{"ep_a", "ep_b"}, at(7 * time.Minute)},
			{[]string{"ep_a", "ep_b", "ep_c"}, time.Time{}},
		}
		for _, tt := range tests {
			next, err := s.NextDue(t.Context(), tt.exclude)
			require.NoError(t, err)
			assertTime(t, tt.want, next, fmt.Sprintf("NextDue excluding %v", tt.exclude))
		}
	}},
	{"ExcludedByAnEarlierClaim", func(t *testing.T, s store.Store) {
		// A claim that excluded an endpoint leaves no trace: NextDue and later claims
		// without the exclusion see its deliveries, including ones enqueued meanwhile.
		enqueue(t, s, Delivery(id(1), "ep_a", at(2*time.Minute)), Delivery(id(2), "ep_b", at(0)),
			Delivery(id(3), "ep_b", at(time.Minute)))
		got, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(0), Limit: 10, Owner: "owner-1", LeaseUntil: at(time.Hour), ExcludeEndpoints: []string{"ep_b"},
		})
		require.NoError(t, err)
		assert.Empty(t, IDs(got))
		next, err := s.NextDue(t.Context(), nil)
		require.NoError(t, err)
		assertTime(t, at(0), next, "NextDue after a claim excluded ep_b")
		next, err = s.NextDue(t.Context(), []string{"ep_b"})
		require.NoError(t, err)
		assertTime(t, at(2*time.Minute), next, "NextDue excluding ep_b")
		enqueue(t, s, Delivery(id(4), "ep_b", at(30*time.Second)))
		assert.Equal(t, []string{id(2), id(4), id(3)}, IDs(claim(t, s, at(time.Minute), "owner-1")))
	}},
	{"OnlyFinished", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_a", at(0)))
		settle(t, s, at(0), map[string]store.State{id(1): store.StateSucceeded, id(2): store.StateFailed})
		next, err := s.NextDue(t.Context(), nil)
		require.NoError(t, err)
		assert.True(t, next.IsZero(), "NextDue with only finished deliveries: want zero, got %s", next)
	}},
}

var pruneTests = pruneCases()

// pruneCases returns one subtest per set of cutoffs, each over its own store holding
// deliveries succeeded and failed at t1 and t3, one in flight and one pending.
func pruneCases() []subtest {
	t1, t2, t3 := at(time.Hour), at(2*time.Hour), at(3*time.Hour)
	far := at(1000 * time.Hour)
	cases := []struct {
		name string
		p    store.PruneParams
		// gone says which of succeeded@t1, succeeded@t3, failed@t1, failed@t3 are deleted.
		gone [4]bool
	}{
		{"ZeroKeepsAll", store.PruneParams{}, [4]bool{}},
		{"Succeeded", store.PruneParams{SucceededBefore: t2}, [4]bool{true, false, false, false}},
		{"Failed", store.PruneParams{FailedBefore: t2}, [4]bool{false, false, true, false}},
		{"Both", store.PruneParams{SucceededBefore: t2, FailedBefore: t2}, [4]bool{true, false, true, false}},
		{"CutoffExclusive", store.PruneParams{SucceededBefore: t1, FailedBefore: t1}, [4]bool{}},
		{"Separate", store.PruneParams{SucceededBefore: t3.Add(time.Microsecond), FailedBefore: t2}, [4]bool{true, true, true, false}},
		{"Everything", store.PruneParams{SucceededBefore: far, FailedBefore: far}, [4]bool{true, true, true, true}},
	}
	out := make([]subtest, len(cases))
	for c, tt := range cases {
		out[c] = subtest{tt.name, func(t *testing.T, s store.Store) {
			finished := []struct {
				id    string
				state store.State
				at    time.Time
			}{
				{id(1), store.StateSucceeded, t1},
				{id(2), store.StateSucceeded, t3},
				{id(3), store.StateFailed, t1},
				{id(4), store.StateFailed, t3},
			}
			want := 0
			for k, f := range finished {
				enqueue(t, s, Delivery(f.id, "ep_a", f.at))
				settle(t, s, f.at, map[string]store.State{f.id: f.state})
				if tt.gone[k] {
					want++
				}
			}
			enqueue(t, s, Delivery(id(5), "ep_a", at(0)), Delivery(id(6), "ep_a", at(24*time.Hour)))
			claimed, err := s.Claim(t.Context(), store.ClaimParams{
				Now: at(0), Limit: 1, Owner: "owner-1", LeaseUntil: at(time.Minute),
			})
			require.NoError(t, err)
			require.Equal(t, []string{id(5)}, IDs(claimed))
			unfinished := []store.Delivery{get(t, s, id(5)), get(t, s, id(6))}

			n, err := s.Prune(t.Context(), tt.p)
			require.NoError(t, err)
			assert.Equal(t, want, n, "pruned")
			for k, f := range finished {
				if tt.gone[k] {
					assertGone(t, s, f.id)
				} else {
					assert.Equal(t, f.state, get(t, s, f.id).State, "kept %s", f.id)
					as, err := s.Attempts(t.Context(), f.id)
					require.NoError(t, err)
					assert.Len(t, as, 1, "attempt log of kept %s", f.id)
				}
			}
			assertUnchanged(t, s, unfinished...)
		}}
	}
	return out
}

var contextTests = []subtest{{"Canceled", func(t *testing.T, s store.Store) {
	enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_a", at(0)))
	settle(t, s, at(0), map[string]store.State{id(1): store.StateFailed, id(2): store.StateSucceeded})
	enqueue(t, s, Delivery(id(3), "ep_a", at(time.Minute)))
	require.Len(t, claim(t, s, at(time.Minute), "owner-1"), 1)

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Enqueue", func(ctx context.Context) error {
			return s.Enqueue(ctx, []store.Delivery{Delivery(id(4), "ep_a", at(0))})
		}},
		{"Claim", func(ctx context.Context) error {
			_, err := s.Claim(ctx, store.ClaimParams{Now: at(time.Hour), Limit: 10, Owner: "owner-2", LeaseUntil: at(2 * time.Hour)})
			return err
		}},
		{"Record", func(ctx context.Context) error {
			return s.Record(ctx, store.RecordParams{DeliveryID: id(3), Owner: "owner-1", Now: at(time.Minute),
				Attempt: attempt(at(time.Minute), 200), State: store.StateSucceeded})
		}},
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, id(1)); return err }},
		{"List", func(ctx context.Context) error { _, err := s.List(ctx, store.ListParams{}); return err }},
		{"Attempts", func(ctx context.Context) error { _, err := s.Attempts(ctx, id(1)); return err }},
		{"Requeue", func(ctx context.Context) error {
			_, err := s.Requeue(ctx, store.RequeueParams{Now: at(time.Hour), IDs: []string{id(1)}})
			return err
		}},
		{"RequeueByEndpoint", func(ctx context.Context) error {
			_, err := s.Requeue(ctx, store.RequeueParams{Now: at(time.Hour), EndpointID: "ep_a"})
			return err
		}},
		{"NextDue", func(ctx context.Context) error { _, err := s.NextDue(ctx, nil); return err }},
		{"Prune", func(ctx context.Context) error {
			_, err := s.Prune(ctx, store.PruneParams{SucceededBefore: at(time.Hour)})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			assert.Error(t, c.call(ctxCanceled(t)), "%s with a canceled context", c.name)
		})
	}
}}}
