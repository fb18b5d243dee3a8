package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/store"
)

var recordTests = []subtest{
	{"Outcomes", testRecordOutcomes},
	{"RetryClaimableWhenDue", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)))
		require.Len(t, claim(t, s, at(0), "owner-1"), 1)
		require.NoError(t, s.Record(t.Context(), store.RecordParams{
			DeliveryID: id(1), Owner: "owner-1", Now: at(time.Second),
			Attempt: attempt(at(0), 503), State: store.StatePending, NextAttemptAt: at(time.Minute),
		}))
		assert.Empty(t, claim(t, s, at(time.Minute-time.Microsecond), "owner-2"), "claim before the retry is due")
		got := claim(t, s, at(time.Minute), "owner-2")
		require.Equal(t, []string{id(1)}, IDs(got), "claim when the retry is due")
		assert.Equal(t, 1, got[0].Attempts, "Attempts")
		assert.Equal(t, "owner-2", got[0].LeaseOwner, "LeaseOwner")
	}},
	{"FinishedNotClaimable", func(t *testing.T, s store.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_a", at(0)))
		settle(t, s, at(0), map[string]store.State{id(1): store.StateSucceeded, id(2): store.StateFailed})
		assert.Empty(t, claim(t, s, at(24*time.Hour), "owner-2"))
	}},
	{"Errors", testRecordErrors},
}

func testRecordOutcomes(t *testing.T, s store.Store) {
	now := at(10 * time.Second)
	tests := []struct {
		name   string
		record store.RecordParams
		// want is the delivery after the record, starting from the claimed one.
		want func(d *store.Delivery)
		// attempts is how many attempts the log holds after the record.
		attempts int
	}{
		{
			name: "Succeeded",
			record: store.RecordParams{
				Attempt: attempt(at(9*time.Second), 204), State: store.StateSucceeded,
			},
			want: func(d *store.Delivery) {
				d.State, d.Attempts, d.LastStatus, d.LastError = store.StateSucceeded, 1, 204, ""
			},
			attempts: 1,
		},
		{
			name: "Retry",
			record: store.RecordParams{
				Attempt: attempt(at(9*time.Second), 503), State: store.StatePending, NextAttemptAt: at(time.Hour),
			},
			want: func(d *store.Delivery) {
				d.State, d.Attempts, d.LastStatus, d.LastError = store.StatePending, 1, 503, "unexpected status 503"
				d.NextAttemptAt = at(time.Hour)
			},
			attempts: 1,
		},
		{
			name: "Failed",
			record: store.RecordParams{
				Attempt: attempt(at(9*time.Second), 0), State: store.StateFailed,
			},
			want: func(d *store.Delivery) {
				d.State, d.Attempts, d.LastStatus = store.StateFailed, 1, 0
				d.LastError = "dial tcp 127.0.0.1:9: connect: connection refused"
			},
			attempts: 1,
		},
		{
			name:   "Release",
			record: store.RecordParams{State: store.StatePending, NextAttemptAt: at(20 * time.Second)},
			want: func(d *store.Delivery) {
				d.State, d.NextAttemptAt = store.StatePending, at(20*time.Second)
			},
		},
		{
			name:   "ReleaseFailedWithReason",
			record: store.RecordParams{State: store.StateFailed, Reason: "endpoint removed"},
			want: func(d *store.Delivery) {
				d.State, d.LastError = store.StateFailed, "endpoint removed"
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case has its own delivery, due at its own time.
			d := Delivery(id(i), "ep_a", at(time.Duration(i)*time.Second))
			enqueue(t, s, d)
			require.Equal(t, []string{d.ID}, IDs(claim(t, s, d.NextAttemptAt, "owner-1")))

			p := tt.record
			p.DeliveryID, p.Owner, p.Now = d.ID, "owner-1", now
			require.NoError(t, s.Record(t.Context(), p))

			want := d
			tt.want(&want)
			want.UpdatedAt = now
			assertDelivery(t, want, get(t, s, d.ID))

			as, err := s.Attempts(t.Context(), d.ID)
			require.NoError(t, err)
			require.Len(t, as, tt.attempts, "attempt log")
			if tt.attempts > 0 {
				assert.Equal(t, tt.record.Attempt.StatusCode, as[0].StatusCode, "StatusCode")
				assert.Equal(t, 1, as[0].Number, "Number")
			}
		})
	}
}

func testRecordErrors(t *testing.T, s store.Store) {
	enqueue(t, s,
		Delivery(id(1), "ep_a", at(0)),         // in flight, owner-1
		Delivery(id(2), "ep_a", at(0)),         // succeeded
		Delivery(id(3), "ep_a", at(time.Hour)), // pending, never claimed
	)
	settle(t, s, at(0), map[string]store.State{id(1): store.StateSucceeded, id(2): store.StateSucceeded})
	// settle finished id(1); requeue it and claim it again to have an in-flight delivery
	// with a history.
	n, err := s.Requeue(t.Context(), store.RequeueParams{Now: at(time.Second), IDs: []string{id(1)}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{id(1)}, IDs(claim(t, s, at(time.Second), "owner-1")))
	before := []store.Delivery{get(t, s, id(1)), get(t, s, id(2)), get(t, s, id(3))}
	logged := map[string]int{id(1): 1, id(2): 1, id(3): 0}

	tests := []struct {
		name  string
		id    string
		owner string
		want  error
	}{
		{"NotOwner", id(1), "owner-2", store.ErrLeaseLost},
		{"EmptyOwner", id(1), "", store.ErrLeaseLost},
		{"Missing", id(9), "owner-1", store.ErrNotFound},
		{"AlreadyFinished", id(2), "settler", store.ErrLeaseLost},
		{"Pending", id(3), "owner-1", store.ErrLeaseLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Record(t.Context(), store.RecordParams{
				DeliveryID: tt.id, Owner: tt.owner, Now: at(2 * time.Second),
				Attempt: attempt(at(time.Second), 200), State: store.StateSucceeded,
			})
			assert.ErrorIs(t, err, tt.want)
			assertUnchanged(t, s, before...)
			for _, d := range before {
				as, err := s.Attempts(t.Context(), d.ID)
				require.NoError(t, err)
				assert.Len(t, as, logged[d.ID], "attempt log of %s", d.ID)
			}
		})
	}
}
