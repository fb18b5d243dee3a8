package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

var claimTests = []subtest{
	{"OnlyDueInDueOrder", testClaimDue},
	{"LiveLeaseNotReclaimed", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(0)))
		first, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(0), Limit: 10, Owner: "owner-1", LeaseUntil: at(30 * time.Second),
		})
		require.NoError(t, err)
		require.Len(t, first, 2)

		for _, owner := range []string{"owner-1", "owner-2"} {
			again, err := s.Claim(t.Context(), store.ClaimParams{
				Now: at(29 * time.Second), Limit: 10, Owner: owner, LeaseUntil: at(time.Minute),
			})
			require.NoError(t, err)
			assert.Empty(t, again, "claim by %s while the lease is live", owner)
		}
		for _, d := range first {
			got := get(t, s, d.ID)
			assert.Equal(t, "owner-1", got.LeaseOwner, "LeaseOwner")
			assertTime(t, at(30*time.Second), got.LeaseExpiresAt, "LeaseExpiresAt")
		}
	}},
	{"ExpiredLeaseReclaimed", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)))
		first, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(0), Limit: 10, Owner: "owner-1", LeaseUntil: at(30 * time.Second),
		})
		require.NoError(t, err)
		require.Len(t, first, 1)

		second, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(31 * time.Second), Limit: 10, Owner: "owner-2", LeaseUntil: at(time.Minute),
		})
		require.NoError(t, err)
		require.Equal(t, []string{id(1)}, IDs(second), "claim after the lease expired")
		assert.Equal(t, store.StateInFlight, second[0].State)
		assert.Equal(t, "owner-2", second[0].LeaseOwner)
		assertTime(t, at(time.Minute), second[0].LeaseExpiresAt, "LeaseExpiresAt")

		err = s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner-1", Now: at(32 * time.Second),
			Attempt: attempt(at(time.Second), 200), State: store.StateSucceeded,
		})
		assert.ErrorIs(t, err, store.ErrLeaseLost, "Record by the owner whose lease expired")
		got := get(t, s, id(1))
		assert.Equal(t, store.StateInFlight, got.State)
		assert.Equal(t, "owner-2", got.LeaseOwner)
		assert.Zero(t, got.Attempts)
		as, err := s.Attempts(t.Context(), id(1))
		require.NoError(t, err)
		assert.Empty(t, as, "the lost owner's attempt was stored")

		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner-2", Now: at(33 * time.Second),
			Attempt: attempt(at(32*time.Second), 200), State: store.StateSucceeded,
		}), "Record by the new owner")
	}},
	{"ExcludeEndpoints", func(t *testing.T, s store.Store) {
		enqueue(t, s,
			Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_b", at(time.Second)),
			Delivery(id(3), "ep_c", at(2*time.Second)))
		exclude := []string{"ep_a", "ep_c"}

		got, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(time.Minute), Limit: 10, Owner: "owner-1", LeaseUntil: at(2 * time.Minute),
			ExcludeEndpoints: exclude,
		})
		require.NoError(t, err)
		assert.Equal(t, []string{id(2)}, IDs(got), "pending deliveries claimed")
		assert.Equal(t, store.StatePending, get(t, s, id(1)).State, "excluded delivery")

		all := claim(t, s, at(time.Minute), "owner-1")
		require.Equal(t, []string{id(1), id(3)}, IDs(all))

		// Every lease has expired by now.
		got, err = s.Claim(t.Context(), store.ClaimParams{
			Now: at(5 * time.Minute), Limit: 10, Owner: "owner-2", LeaseUntil: at(6 * time.Minute),
			ExcludeEndpoints: exclude,
		})
		require.NoError(t, err)
		assert.Equal(t, []string{id(2)}, IDs(got), "expired-lease deliveries claimed")
		for _, i := range []int{1, 3} {
			assert.Equal(t, "owner-1", get(t, s, id(i)).LeaseOwner, "excluded expired delivery %s", id(i))
		}
		assert.ElementsMatch(t, []string{id(1), id(3)}, IDs(claim(t, s, at(5*time.Minute), "owner-3")))
	}},
	{"ExcludeManyEndpoints", func(t *testing.T, s store.Store) {
		// More excluded endpoints than a short list: a store may test rows against a long
		// list another way (the PostgreSQL store hashes it), with the same result.
		var ds []store.Delivery
		var exclude []string
		for i := range 12 {
			ep := fmt.Sprintf("ep_%02d", i)
			if i%6 != 5 {
				exclude = append(exclude, ep) // all but ep_05 and ep_11
			}
			ds = append(ds, Delivery(id(2*i), ep, at(time.Duration(i)*time.Second)),
				Delivery(id(2*i+1), ep, at(time.Duration(20+i)*time.Second)))
		}
		enqueue(t, s, ds...)

		next, err := s.NextDue(t.Context(), exclude)
		require.NoError(t, err)
		assertTime(t, at(5*time.Second), next, "NextDue excluding ten endpoints")
		capped, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(time.Minute), Limit: 10, Owner: "owner-1", LeaseUntil: at(2 * time.Minute),
			ExcludeEndpoints: exclude, MaxPerEndpoint: 1,
		})
		require.NoError(t, err)
		assert.Equal(t, []string{id(10), id(22)}, IDs(capped), "one each of the endpoints not excluded")
		got, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(time.Minute), Limit: 10, Owner: "owner-1", LeaseUntil: at(2 * time.Minute),
			ExcludeEndpoints: exclude,
		})
		require.NoError(t, err)
		assert.Equal(t, []string{id(11), id(23)}, IDs(got), "the rest of the endpoints not excluded")
		for _, ex := range []int{0, 4, 6, 10} {
			assert.Equal(t, store.StatePending, get(t, s, id(2*ex)).State, "a delivery of excluded %s", exclude[min(ex, 9)])
		}
		assert.Len(t, claim(t, s, at(time.Minute), "owner-1"), 20, "the excluded endpoints' deliveries")

		// Every lease has expired by now: the excluded endpoints' stay with their owner.
		got, err = s.Claim(t.Context(), store.ClaimParams{
			Now: at(5 * time.Minute), Limit: 10, Owner: "owner-2", LeaseUntil: at(6 * time.Minute),
			ExcludeEndpoints: exclude,
		})
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{id(10), id(11), id(22), id(23)}, IDs(got), "expired leases claimed")
	}},
	{"MaxPerEndpoint", func(t *testing.T, s store.Store) {
		var ds []store.Delivery
		want := map[string][]string{} // the two earliest due of each endpoint
		for i := range 15 {
			ep := fmt.Sprintf("ep_%c", 'a'+i%3)
			// Due times interleave endpoints and run backwards within each.
			d := Delivery(id(i), ep, at(time.Duration(15-i)*time.Second))
			ds = append(ds, d)
		}
		for _, d := range slices.Backward(ds) {
			if len(want[d.EndpointID]) < 2 {
				want[d.EndpointID] = append(want[d.EndpointID], d.ID)
			}
		}
		enqueue(t, s, ds...)

		// earliest asks for the earliest due of each endpoint; expired leases have no order.
		check := func(now time.Time, owner string, earliest bool) {
			t.Helper()
			got, err := s.Claim(t.Context(), store.ClaimParams{
				Now: now, Limit: 100, Owner: owner, LeaseUntil: now.Add(time.Minute), MaxPerEndpoint: 2,
			})
			require.NoError(t, err)
			assert.Len(t, got, 6)
			per := map[string][]string{}
			for _, d := range got {
				per[d.EndpointID] = append(per[d.EndpointID], d.ID)
			}
			for ep, w := range want {
				if earliest {
					assert.ElementsMatch(t, w, per[ep], "claimed of %s", ep)
				} else {
					assert.Len(t, per[ep], 2, "claimed of %s", ep)
				}
			}
		}
		check(at(time.Minute), "owner-1", true) // pending deliveries
		all := claim(t, s, at(time.Minute), "owner-1")
		require.Len(t, all, 9)
		check(at(10*time.Minute), "owner-2", false) // expired leases
	}},
	{"MaxPerEndpointPastABacklog", func(t *testing.T, s store.Store) {
		// One endpoint's due backlog, four times the claim's limit, is ahead of two
		// others' work: the claim takes the backlog's two earliest and looks past the
		// rest for the others', two each.
		const limit, perEndpoint = 10, 2
		var ds []store.Delivery
		for i := range 4 * limit {
			ds = append(ds, Delivery(fmt.Sprintf("hot_%03d", i), "ep_hot", at(time.Duration(i)*time.Millisecond)))
		}
		for i := range 3 {
			ds = append(ds, Delivery(fmt.Sprintf("b_%d", i), "ep_b", at(time.Second+time.Duration(i)*time.Millisecond)),
				Delivery(fmt.Sprintf("c_%d", i), "ep_c", at(2*time.Second+time.Duration(i)*time.Millisecond)))
		}
		enqueue(t, s, ds...)
		got, err := s.Claim(t.Context(), store.ClaimParams{
			Now: at(time.Minute), Limit: limit, Owner: "owner-1", LeaseUntil: at(2 * time.Minute), MaxPerEndpoint: perEndpoint,
		})
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{"hot_000", "hot_001", "b_0", "b_1", "c_0", "c_1"}, IDs(got))
	}},
	{"ConcurrentClaimers", testConcurrentClaimers},
}

func testClaimDue(t *testing.T, s store.Store) {
	// Due order differs from ID order and from endpoint order.
	ds := []store.Delivery{
		Delivery(id(1), "ep_a", at(3*time.Second)),
		Delivery(id(2), "ep_b", at(1*time.Second)),
		Delivery(id(3), "ep_c", at(2*time.Second)),
		Delivery(id(4), "ep_a", at(4*time.Second)),
		Delivery(id(5), "ep_b", at(5*time.Second+time.Microsecond)), // not due
		Delivery(id(6), "ep_a", at(time.Hour)),                      // not due
	}
	enqueue(t, s, ds...)
	due := map[string]time.Time{}
	for _, d := range ds {
		due[d.ID] = d.NextAttemptAt
	}
	now := at(5 * time.Second)
	leaseUntil := at(time.Minute)
	for _, tt := range []struct {
		limit int
		want  []string
	}{
		{limit: 10, want: []string{id(2), id(3), id(1), id(4)}},
		{limit: 4, want: []string{id(2), id(3), id(1), id(4)}},
		{limit: 2, want: []string{id(2), id(3)}},
		{limit: 0, want: nil},
	} {
		t.Run(fmt.Sprintf("Limit%d", tt.limit), func(t *testing.T) {
			got, err := s.Claim(t.Context(), store.ClaimParams{
				Now: now, Limit: tt.limit, Owner: "owner-1", LeaseUntil: leaseUntil,
			})
			require.NoError(t, err)
			require.Equal(t, tt.want, IDs(got), "claimed deliveries in due order")
			for _, d := range got {
				assert.Equal(t, store.StateInFlight, d.State, "State")
				assert.Equal(t, "owner-1", d.LeaseOwner, "LeaseOwner")
				assertTime(t, leaseUntil, d.LeaseExpiresAt, "LeaseExpiresAt")
				stored := get(t, s, d.ID)
				assert.Equal(t, store.StateInFlight, stored.State, "stored State")
				assert.Equal(t, "owner-1", stored.LeaseOwner, "stored LeaseOwner")
				assertTime(t, leaseUntil, stored.LeaseExpiresAt, "stored LeaseExpiresAt")
				assertBytes(t, Delivery(d.ID, "", now).Body, d.Body, "Body")
			}
			// Put them back, due as before, for the next case.
			for _, d := range got {
				require.NoError(t, s.Record(t.Context(), store.RecordParams{
					DeliveryID: d.ID, Owner: "owner-1", Now: now, State: store.StatePending,
					NextAttemptAt: due[d.ID],
				}))
			}
		})
	}
	for _, i := range []int{5, 6} {
		assert.Equal(t, store.StatePending, get(t, s, id(i)).State, "%s (not due)", id(i))
	}
}

func testConcurrentClaimers(t *testing.T, s store.Store) {
	const n, claimers = 500, 8
	ds := make([]store.Delivery, n)
	for i := range ds {
		ds[i] = Delivery(id(i), fmt.Sprintf("ep_%d", i%5), at(time.Duration(i)*time.Millisecond))
	}
	enqueue(t, s, ds...)

	now, leaseUntil := at(time.Minute), at(time.Hour)
	got := make([][]string, claimers)
	var wg sync.WaitGroup
	for c := range claimers {
		wg.Go(func() {
			owner := fmt.Sprintf("owner-%d", c)
			for range n {
				batch, err := s.Claim(t.Context(), store.ClaimParams{
					Now: now, Limit: 7, Owner: owner, LeaseUntil: leaseUntil,
				})
				if !assert.NoError(t, err, "Claim by %s", owner) || len(batch) == 0 {
					return
				}
				for _, d := range batch {
					assert.Equal(t, owner, d.LeaseOwner, "LeaseOwner")
					got[c] = append(got[c], d.ID)
				}
			}
		})
	}
	wg.Wait()

	var all []string
	for _, g := range got {
		all = append(all, g...)
	}
	seen := make(map[string]int, len(all))
	for _, id := range all {
		seen[id]++
	}
	for id, k := range seen {
		assert.Equal(t, 1, k, "%s was claimed %d times", id, k)
	}
	assert.Len(t, seen, n, "distinct deliveries claimed")
	assert.Len(t, all, n, "deliveries claimed")
	assert.Empty(t, claim(t, s, now, "late"), "claim after every delivery was taken")
}
