package filestore_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func delivery(i int, endpointID string, due time.Time) webhook.Delivery {
	id := fmt.Sprintf("dlv_%05d", i)
	return webhook.Delivery{
		ID: id, EventID: "msg_" + id, EventType: "invoice.paid", EndpointID: endpointID,
		Version: "1", Body: []byte(`{"id":"` + id + `"}`), State: webhook.StatePending,
		CreatedAt: due, QueuedAt: due, NextAttemptAt: due, UpdatedAt: due,
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "hooks.db")
	s, err := filestore.Open(path)
	require.NoError(t, err)

	var ds []webhook.Delivery
	for i := range 4 {
		ds = append(ds, delivery(i, "ep_a", base))
	}
	ds[3].NextAttemptAt = base.Add(time.Hour)
	require.NoError(t, s.Enqueue(ctx, ds))
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: base, Limit: 2, Owner: "snd_1", LeaseUntil: base.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []string{ds[0].ID, ds[1].ID}, storetest.IDs(claimed))
	attempt := &webhook.Attempt{StartedAt: base, Duration: 42 * time.Millisecond, StatusCode: 503,
		Error: "answered HTTP 503", ResponseBody: []byte("busy")}
	require.NoError(t, s.Record(ctx, store.RecordParams{DeliveryID: ds[0].ID, Owner: "snd_1", Now: base,
		Attempt: attempt, State: webhook.StatePending, NextAttemptAt: base.Add(time.Second)}))
	require.NoError(t, s.Close())

	s, err = filestore.Open(path)
	require.NoError(t, err)
	defer s.Close()

	n, err := s.Len()
	require.NoError(t, err)
	assert.Equal(t, 4, n, "unfinished deliveries")

	got, err := s.Get(ctx, ds[0].ID)
	require.NoError(t, err)
	assert.Equal(t, webhook.StatePending, got.State)
	assert.Equal(t, 1, got.Attempts)
	assert.Equal(t, 503, got.LastStatus)
	assert.True(t, base.Add(time.Second).Equal(got.NextAttemptAt), "NextAttemptAt %s", got.NextAttemptAt)
	assert.Equal(t, ds[0].Body, got.Body)

	as, err := s.Attempts(ctx, ds[0].ID)
	require.NoError(t, err)
	require.Len(t, as, 1)
	assert.Equal(t, 1, as[0].Number)
	assert.Equal(t, ds[0].ID, as[0].DeliveryID)
	assert.Equal(t, attempt.Duration, as[0].Duration)
	assert.Equal(t, attempt.Error, as[0].Error)
	assert.Equal(t, attempt.ResponseBody, as[0].ResponseBody)
	assert.True(t, attempt.StartedAt.Equal(as[0].StartedAt))

	inFlight, err := s.Get(ctx, ds[1].ID)
	require.NoError(t, err)
	assert.Equal(t, webhook.StateInFlight, inFlight.State)
	assert.Equal(t, "snd_1", inFlight.LeaseOwner)
	assert.True(t, base.Add(time.Minute).Equal(inFlight.LeaseExpiresAt))

	// A restarted sender gets the pending ones now and the crashed one's lease when it
	// expires: the recovery path.
	next, err := s.NextDue(ctx, nil)
	require.NoError(t, err)
	assert.True(t, base.Equal(next), "NextDue %s", next)
	claimed, err = s.Claim(ctx, store.ClaimParams{Now: base.Add(time.Second), Limit: 10, Owner: "snd_2", LeaseUntil: base.Add(2 * time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[2].ID, ds[0].ID}, storetest.IDs(claimed), "due in NextAttemptAt order")
	claimed, err = s.Claim(ctx, store.ClaimParams{Now: base.Add(time.Minute), Limit: 10, Owner: "snd_2", LeaseUntil: base.Add(2 * time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, []string{ds[1].ID}, storetest.IDs(claimed), "the expired lease")
	assert.Equal(t, webhook.StateInFlight, claimed[0].State)
	assert.Equal(t, "snd_2", claimed[0].LeaseOwner)
	assert.ErrorIs(t, s.Record(ctx, store.RecordParams{DeliveryID: ds[1].ID, Owner: "snd_1", Now: base, State: webhook.StateSucceeded}),
		store.ErrLeaseLost, "the crashed sender's lease")
}

func TestSecondOpenIsLocked(t *testing.T) {
	_, path := openStore(t)
	_, err := filestore.Open(path, filestore.WithLockTimeout(50*time.Millisecond))
	require.ErrorIs(t, err, filestore.ErrLocked)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "another process")

	_, err = filestore.Open(path, filestore.WithLockTimeout(0))
	assert.ErrorIs(t, err, filestore.ErrLocked, "zero timeout tries once")
}

func TestOpenAfterCloseIsNotLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hooks.db")
	s, err := filestore.Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "second Close")
	s, err = filestore.Open(path, filestore.WithLockTimeout(0))
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts []filestore.Option
		want error
	}{
		{"negative capacity", filepath.Join(dir, "a.db"), []filestore.Option{filestore.WithCapacity(-1)}, webhook.ErrInvalidOption},
		{"zero batch delay", filepath.Join(dir, "b.db"), []filestore.Option{filestore.WithGroupCommit(0, 10)}, webhook.ErrInvalidOption},
		{"zero batch size", filepath.Join(dir, "c.db"), []filestore.Option{filestore.WithGroupCommit(time.Millisecond, 0)}, webhook.ErrInvalidOption},
		{"missing directory", filepath.Join(dir, "nope", "d.db"), nil, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := filestore.Open(tt.path, tt.opts...)
			if s != nil {
				s.Close()
			}
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestOpenRejectsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(path, []byte("not a database, just some text that is long enough"), 0o600))
	s, err := filestore.Open(path)
	if s != nil {
		s.Close()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
}

func TestClosedStore(t *testing.T) {
	ctx := testContext(t)
	s, _ := openStore(t)
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Enqueue(ctx, []webhook.Delivery{delivery(1, "ep", base)}), filestore.ErrClosed)
	_, err := s.Claim(ctx, store.ClaimParams{Now: base, Limit: 1, Owner: "o", LeaseUntil: base})
	assert.ErrorIs(t, err, filestore.ErrClosed)
	_, err = s.Get(ctx, "dlv_1")
	assert.ErrorIs(t, err, filestore.ErrClosed)
	_, err = s.Len()
	assert.ErrorIs(t, err, filestore.ErrClosed)
}

func TestCapacity(t *testing.T) {
	ctx := testContext(t)
	s, _ := openStore(t, filestore.WithCapacity(3))
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{delivery(1, "ep", base), delivery(2, "ep", base)}))
	err := s.Enqueue(ctx, []webhook.Delivery{delivery(3, "ep", base), delivery(4, "ep", base)})
	require.ErrorIs(t, err, webhook.ErrQueueFull)
	assert.Contains(t, err.Error(), "WithCapacity")
	_, err = s.Get(ctx, delivery(3, "ep", base).ID)
	assert.ErrorIs(t, err, webhook.ErrNotFound, "all or none")

	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{delivery(3, "ep", base)}))
	assert.ErrorIs(t, s.Enqueue(ctx, []webhook.Delivery{delivery(4, "ep", base)}), webhook.ErrQueueFull)

	// Finishing one makes room; requeueing it takes the room again.
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: base, Limit: 1, Owner: "o", LeaseUntil: base.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, s.Record(ctx, store.RecordParams{DeliveryID: claimed[0].ID, Owner: "o", Now: base, State: webhook.StateSucceeded}))
	n, err := s.Len()
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{delivery(4, "ep", base)}))
	assert.ErrorIs(t, s.Enqueue(ctx, []webhook.Delivery{delivery(5, "ep", base)}), webhook.ErrQueueFull)
}

// TestGroupCommit runs many Enqueues at once, some refused, so they share batches: each
// caller must get its own answer, and the refusals must not undo the others.
func TestGroupCommit(t *testing.T) {
	ctx := testContext(t)
	s, _ := openStore(t, filestore.WithGroupCommit(20*time.Millisecond, 1000))
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{delivery(0, "ep", base)}))
	const callers = 64
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			d := delivery(i+1, fmt.Sprintf("ep_%d", i%5), base.Add(time.Duration(i)*time.Millisecond))
			if i%8 == 0 {
				d.ID = delivery(0, "ep", base).ID // already stored
			}
			errs[i] = s.Enqueue(ctx, []webhook.Delivery{d})
		})
	}
	wg.Wait()
	want := 1
	for i, err := range errs {
		if i%8 == 0 {
			assert.ErrorIs(t, err, store.ErrDuplicateDelivery, "caller %d", i)
			continue
		}
		assert.NoError(t, err, "caller %d", i)
		want++
	}
	n, err := s.Len()
	require.NoError(t, err)
	assert.Equal(t, want, n)
	res, err := s.List(ctx, webhook.ListParams{Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, want)
}

// TestClaimMergesEndpoints checks the merge of the per-endpoint queues: due order across
// endpoints, with exclusions, the per-endpoint cap and the limit.
func TestClaimMergesEndpoints(t *testing.T) {
	layout := []struct {
		endpointID string
		due        time.Duration
	}{
		{"ep_a", 5 * time.Second}, {"ep_b", 1 * time.Second}, {"ep_a", 2 * time.Second}, {"ep_c", 3 * time.Second},
		{"ep_b", 4 * time.Second}, {"ep_a", 6 * time.Second}, {"ep_c", 7 * time.Second},
	}
	tests := []struct {
		name    string
		limit   int
		exclude []string
		perEP   int
		want    []int
	}{
		{"all due", 100, nil, 0, []int{1, 2, 3, 4, 0, 5}},
		{"limit", 2, nil, 0, []int{1, 2}},
		{"excluded", 100, []string{"ep_b"}, 0, []int{2, 3, 0, 5}},
		{"one per endpoint", 100, nil, 1, []int{1, 2, 3}},
		{"two per endpoint, excluded", 100, []string{"ep_c"}, 2, []int{1, 2, 4, 0}},
		{"all excluded", 100, []string{"ep_a", "ep_b", "ep_c"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s, _ := openStore(t)
			var ds []webhook.Delivery
			for i, l := range layout {
				ds = append(ds, delivery(i, l.endpointID, base.Add(l.due)))
			}
			require.NoError(t, s.Enqueue(ctx, ds))
			got, err := s.Claim(ctx, store.ClaimParams{Now: base.Add(6 * time.Second), Limit: tt.limit, Owner: "o",
				LeaseUntil: base.Add(time.Hour), ExcludeEndpoints: tt.exclude, MaxPerEndpoint: tt.perEP})
			require.NoError(t, err)
			var want []string
			for _, i := range tt.want {
				want = append(want, ds[i].ID)
			}
			assert.Equal(t, want, storetest.IDs(got))

			// The rest is still queued in order.
			rest, err := s.Claim(ctx, store.ClaimParams{Now: base.Add(time.Minute), Limit: 100, Owner: "o", LeaseUntil: base.Add(time.Hour)})
			require.NoError(t, err)
			assert.Len(t, rest, len(ds)-len(want))
			for i := 1; i < len(rest); i++ {
				assert.False(t, rest[i].NextAttemptAt.Before(rest[i-1].NextAttemptAt), "due order")
			}
		})
	}
}

func TestNextDue(t *testing.T) {
	ctx := testContext(t)
	s, _ := openStore(t)
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{
		delivery(1, "ep_a", base.Add(3*time.Second)), delivery(2, "ep_b", base.Add(2*time.Second)),
		delivery(3, "ep_c", base.Add(5*time.Second)),
	}))
	_, err := s.Claim(ctx, store.ClaimParams{Now: base.Add(3 * time.Second), Limit: 1, Owner: "o", LeaseUntil: base.Add(4 * time.Second)})
	require.NoError(t, err) // ep_b's is in flight until 4s
	tests := []struct {
		exclude []string
		want    time.Time
	}{
		{nil, base.Add(3 * time.Second)},
		{[]string{"ep_a"}, base.Add(4 * time.Second)},
		{[]string{"ep_a", "ep_b"}, base.Add(5 * time.Second)},
		{[]string{"ep_a", "ep_b", "ep_c"}, time.Time{}},
	}
	for _, tt := range tests {
		got, err := s.NextDue(ctx, tt.exclude)
		require.NoError(t, err)
		assert.True(t, tt.want.Equal(got), "exclude %v: want %s, got %s", tt.exclude, tt.want, got)
	}
}

func TestEnqueueRejects(t *testing.T) {
	ctx := testContext(t)
	s, _ := openStore(t)
	d := delivery(1, "ep", base)
	tests := []struct {
		name string
		ds   []webhook.Delivery
	}{
		{"empty ID", []webhook.Delivery{{EndpointID: "ep"}}},
		{"empty endpoint", []webhook.Delivery{{ID: "dlv_x"}}},
		{"same ID twice", []webhook.Delivery{d, d}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Error(t, s.Enqueue(ctx, tt.ds))
			n, err := s.Len()
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
	assert.NoError(t, s.Enqueue(ctx, nil))
}

func TestRecordErrors(t *testing.T) {
	ctx := testContext(t)
	s, _ := openStore(t)
	err := s.Record(ctx, store.RecordParams{DeliveryID: "dlv_none", Owner: "o", Now: base, State: webhook.StateSucceeded})
	assert.ErrorIs(t, err, webhook.ErrNotFound)
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{delivery(1, "ep", base)}))
	err = s.Record(ctx, store.RecordParams{DeliveryID: delivery(1, "ep", base).ID, Owner: "o", Now: base, State: webhook.StateSucceeded})
	assert.ErrorIs(t, err, store.ErrLeaseLost, "pending, not leased")
	err = s.Record(ctx, store.RecordParams{DeliveryID: delivery(1, "ep", base).ID, Owner: "o", Now: base, State: webhook.StateInFlight})
	assert.ErrorIs(t, err, webhook.ErrInvalidState)
	assert.False(t, errors.Is(err, store.ErrLeaseLost))
}

func TestOpenRejectsOtherBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("users"))
		return err
	}))
	require.NoError(t, db.Close())
	s, err := filestore.Open(path)
	if s != nil {
		s.Close()
	}
	assert.ErrorContains(t, err, "another program")
}
