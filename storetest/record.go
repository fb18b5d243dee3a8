package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

var recordTests = []subtest{
	{"Outcomes", testRecordOutcomes},
	{"RetryClaimableWhenDue", func(t *testing.T, s webhook.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)))
		require.Len(t, claim(t, s, at(0), "owner-1"), 1)
		require.NoError(t, s.Record(t.Context(), webhook.RecordParams{
			DeliveryID: id(1), Owner: "owner-1", Now: at(time.Second),
			Attempt: attempt(at(0), 503), State: webhook.StatePending, NextAttemptAt: at(time.Minute),
		}))
		assert.Empty(t, claim(t, s, at(time.Minute-time.Microsecond), "owner-2"), "claim before the retry is due")
		got := claim(t, s, at(time.Minute), "owner-2")
		require.Equal(t, []string{id(1)}, IDs(got), "claim when the retry is due")
		assert.Equal(t, 1, got[0].Attempts, "Attempts")
		assert.Equal(t, "owner-2", got[0].LeaseOwner, "LeaseOwner")
	}},
	{"FinishedNotClaimable", func(t *testing.T, s webhook.Store) {
		enqueue(t, s, Delivery(id(1), "ep_a", at(0)), Delivery(id(2), "ep_a", at(0)))
		settle(t, s, at(0), map[string]webhook.State{id(1): webhook.StateSucceeded, id(2): webhook.StateFailed})
		assert.Empty(t, claim(t, s, at(24*time.Hour), "owner-2"))
	}},
	{"Errors", testRecordErrors},
}

func testRecordOutcomes(t *testing.T, s webhook.Store) {
	now := at(10 * time.Second)
	tests := []struct {
		name   string
		record webhook.RecordParams
		// want is the delivery after the record, starting from the claimed one.
		want func(d *webhook.Delivery)
		// attempts is how many attempts the log holds after the record.
		attempts int
	}{
		{
			name: "Succeeded",
			record: webhook.RecordParams{
				Attempt: attempt(at(9*time.Second), 204), State: webhook.StateSucceeded,
			},
			want: func(d *webhook.Delivery) {
				d.State, d.Attempts, d.LastStatus, d.LastError = webhook.StateSucceeded, 1, 204, ""
			},
			attempts: 1,
		},
		{
			name: "Retry",
			record: webhook.RecordParams{
				Attempt: attempt(at(9*time.Second), 503), State: webhook.StatePending, NextAttemptAt: at(time.Hour),
			},
			want: func(d *webhook.Delivery) {
				d.State, d.Attempts, d.LastStatus, d.LastError = webhook.StatePending, 1, 503, "unexpected status 503"
				d.NextAttemptAt = at(time.Hour)
			},
			attempts: 1,
		},
		{
			name: "Failed",
			record: webhook.RecordParams{
				Attempt: attempt(at(9*time.Second), 0), State: webhook.StateFailed,
			},
			want: func(d *webhook.Delivery) {
				d.State, d.Attempts, d.LastStatus = webhook.StateFailed, 1, 0
				d.LastError = "dial tcp 127.0.0.1:9: connect: connection refused"
			},
			attempts: 1,
		},
		{
			name:   "Release",
			record: webhook.RecordParams{State: webhook.StatePending, NextAttemptAt: at(20 * time.Second)},
			want: func(d *webhook.Delivery) {
				d.State, d.NextAttemptAt = webhook.StatePending, at(20*time.Second)
			},
		},
		{
			name:   "ReleaseFailedWithReason",
			record: webhook.RecordParams{State: webhook.StateFailed, Reason: "endpoint removed"},
			want: func(d *webhook.Delivery) {
				d.State, d.LastError = webhook.StateFailed, "endpoint removed"
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

func testRecordErrors(t *testing.T, s webhook.Store) {
	enqueue(t, s,
		Delivery(id(1), "ep_a", at(0)),         // in flight, owner-1
		Delivery(id(2), "ep_a", at(0)),         // succeeded
		Delivery(id(3), "ep_a", at(time.Hour)), // pending, never claimed
	)
	settle(t, s, at(0), map[string]webhook.State{id(1): webhook.StateSucceeded, id(2): webhook.StateSucceeded})
	// settle finished id(1); requeue it and claim it again to have an in-flight delivery
	// with a history.
	n, err := s.Requeue(t.Context(), webhook.RequeueParams{Now: at(time.Second), IDs: []string{id(1)}})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{id(1)}, IDs(claim(t, s, at(time.Second), "owner-1")))
	before := []webhook.Delivery{get(t, s, id(1)), get(t, s, id(2)), get(t, s, id(3))}
	logged := map[string]int{id(1): 1, id(2): 1, id(3): 0}

	tests := []struct {
		name  string
		id    string
		owner string
		want  error
	}{
		{"NotOwner", id(1), "owner-2", webhook.ErrLeaseLost},
		{"EmptyOwner", id(1), "", webhook.ErrLeaseLost},
		{"Missing", id(9), "owner-1", webhook.ErrNotFound},
		{"AlreadyFinished", id(2), "settler", webhook.ErrLeaseLost},
		{"Pending", id(3), "owner-1", webhook.ErrLeaseLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Record(t.Context(), webhook.RecordParams{
				DeliveryID: tt.id, Owner: tt.owner, Now: at(2 * time.Second),
				Attempt: attempt(at(time.Second), 200), State: webhook.StateSucceeded,
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
