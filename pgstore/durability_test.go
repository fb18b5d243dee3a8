package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/internal/pgtest"
	"github.com/hooksmith/webhook/pgstore"
	"github.com/hooksmith/webhook/store"
)

func pendingDeliveries(n int, prefix string) []webhook.Delivery {
	now := time.Now()
	ds := make([]webhook.Delivery, n)
	for i := range ds {
		ds[i] = webhook.Delivery{ID: fmt.Sprintf("%s_%04d", prefix, i), EventID: fmt.Sprintf("msg_%s_%d", prefix, i),
			EventType: "a.b", EndpointID: "ep", Version: "1", Body: []byte(`{}`), State: webhook.StatePending,
			CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}
	}
	return ds
}

// The store's own writes are durable whatever the server's default: on a server with
// synchronous_commit off (and a WAL writer that flushes only every ten seconds), every
// Enqueue and Record that returned survives a SIGKILL of the whole server.
func TestWritesSurviveAServerCrashWithSynchronousCommitOff(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a PostgreSQL server; skipped with -short")
	}
	t.Parallel()
	c := pgtest.Dedicated(t, "-c", "synchronous_commit=off", "-c", "wal_writer_delay=10000ms")
	ctx := testContext(t)
	open := func() (*pgxpool.Pool, *pgstore.Store) {
		pool, err := pgxpool.New(ctx, c.URL())
		require.NoError(t, err)
		s, err := pgstore.New(ctx, pool)
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		return pool, s
	}
	pool, s := open()
	const n = 40
	ds := pendingDeliveries(n, "dlv")
	for i := range ds {
		require.NoError(t, s.Enqueue(ctx, ds[i:i+1]))
	}
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: time.Now(), Limit: 10, Owner: "o", LeaseUntil: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.Len(t, claimed, 10)
	for _, d := range claimed {
		require.NoError(t, s.Record(ctx, store.RecordParams{DeliveryID: d.ID, Owner: "o", Now: time.Now(),
			State: webhook.StateSucceeded, Attempt: &webhook.Attempt{StartedAt: time.Now(), StatusCode: 204}}))
	}
	last := pendingDeliveries(10, "last")
	for i := range last {
		require.NoError(t, s.Enqueue(ctx, last[i:i+1]))
	}
	ds = append(ds, last...)
	c.Kill()
	s.Close()
	pool.Close()

	c.Start()
	pool, s = open()
	defer pool.Close()
	defer s.Close()
	for _, d := range ds {
		_, err := s.Get(ctx, d.ID)
		assert.NoError(t, err, "an accepted delivery is lost")
	}
	for _, d := range claimed {
		got, err := s.Get(ctx, d.ID)
		if assert.NoError(t, err) {
			assert.Equal(t, webhook.StateSucceeded, got.State, "a recorded result is lost")
		}
	}
}

// A claim whose transaction fails to commit leased nothing: Claim returns the error,
// not rows it read before the commit.
func TestAClaimWhoseCommitFailsReturnsNoDeliveries(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgtest.URL(t))
	s := newStore(t, pool)
	ctx := testContext(t)
	require.NoError(t, s.Enqueue(ctx, pendingDeliveries(3, "dlv")))
	// A deferred constraint trigger runs at commit, after the claim's rows were sent.
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
		CREATE CONSTRAINT TRIGGER refuse_commit AFTER UPDATE ON hooksmith_deliveries
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();`)
	require.NoError(t, err)
	got, err := s.Claim(ctx, store.ClaimParams{Now: time.Now(), Limit: 3, Owner: "o", LeaseUntil: time.Now().Add(time.Hour)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refused at commit")
	assert.Empty(t, got)
	var inFlight int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM hooksmith_deliveries WHERE state = 'in_flight'`).Scan(&inFlight))
	assert.Zero(t, inFlight)
}

// testContext bounds a test's waits.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
