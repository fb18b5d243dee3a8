package pgstore_test

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/internal/pgtest"
	"github.com/hooksmith/webhook/pgstore"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
)

// TestConformance runs the Store conformance suite, each subtest in a fresh schema of one
// database (creating a database per subtest would be slower and prove nothing more).
func TestConformance(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) webhook.Store {
		return newStore(t, pool, pgstore.WithSchema(fmt.Sprintf("conformance_%d", n.Add(1))))
	})
}

func TestMigrate(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	ctx := t.Context()
	s, err := pgstore.New(ctx, pool, pgstore.WithSchema("hooks"), pgstore.WithTablePrefix("app_"))
	require.NoError(t, err)
	defer s.Close()

	// Five processes starting at once all migrate; the advisory lock serializes them.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "Migrate #%d", i)
	}
	require.NoError(t, s.Migrate(ctx), "Migrate again")

	var tables []string
	rows, _ := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'hooks' ORDER BY 1`)
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"app_attempts", "app_deliveries", "app_migrations"}, tables)
	var applied int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM hooks.app_migrations`).Scan(&applied))
	files, err := fs.Glob(pgstore.Migrations(), "*.up.sql")
	require.NoError(t, err)
	assert.Equal(t, len(files), applied, "each migration recorded once")
}

func TestMigrationsFS(t *testing.T) {
	fsys := pgstore.Migrations(pgstore.WithSchema("billing"), pgstore.WithTablePrefix("wh_"))
	require.NotNil(t, fsys)
	entries, err := fs.ReadDir(fsys, ".")
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	assert.Equal(t, "0001_init.up.sql", entries[0].Name())
	assert.Equal(t, "0002_attempts_without_fk.up.sql", entries[1].Name())
	b, err := fs.ReadFile(fsys, entries[0].Name())
	require.NoError(t, err)
	assert.Contains(t, string(b), `CREATE TABLE "billing"."wh_deliveries"`)
	assert.NotContains(t, string(b), "{{")

	// The rendered files are what Migrate applies: a user's own tool gets the same schema.
	pool := newPool(t, pgtest.URL(t))
	for _, e := range entries {
		sql, err := fs.ReadFile(fsys, e.Name())
		require.NoError(t, err)
		_, err = pool.Exec(t.Context(), "CREATE SCHEMA IF NOT EXISTS billing; "+string(sql))
		require.NoError(t, err, e.Name())
	}
	s, err := pgstore.New(t.Context(), pool, pgstore.WithSchema("billing"), pgstore.WithTablePrefix("wh_"))
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Enqueue(t.Context(), []webhook.Delivery{storetest.Delivery("dlv_0001", "ep", time.Now())}))
}

func TestNewRejectsBadOptions(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	for _, opt := range []pgstore.Option{
		pgstore.WithSchema("Bad-Name"),
		pgstore.WithSchema(""),
		pgstore.WithTablePrefix("x;drop"),
		pgstore.WithTablePrefix(strings.Repeat("p", 40)),
		pgstore.WithChannel(""),
		pgstore.WithBatchSize(0),
	} {
		_, err := pgstore.New(t.Context(), pool, opt)
		assert.ErrorIs(t, err, webhook.ErrInvalidOption)
	}
	_, err := pgstore.New(t.Context(), nil)
	assert.ErrorIs(t, err, webhook.ErrInvalidOption)
}

func TestMissingTablesSayMigrate(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	s, err := pgstore.New(t.Context(), pool)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Get(t.Context(), "dlv_0001")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Migrate")
}

func TestEnqueueTxNeedsPgxTx(t *testing.T) {
	s := newStore(t, newPool(t, pgtest.URL(t)))
	err := s.EnqueueTx(t.Context(), "not a tx", []webhook.Delivery{storetest.Delivery("dlv_0001", "ep", time.Now())})
	assert.ErrorIs(t, err, webhook.ErrInvalidOption)
}

// TestRecordBatchesKeepTheirOwnResults records many attempts at once, so that they are
// written in shared batches, some with a lost lease or an unknown ID among them.
func TestRecordBatchesKeepTheirOwnResults(t *testing.T) {
	s := newStore(t, newPool(t, pgtest.URL(t)))
	ctx := t.Context()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 300
	ds := make([]webhook.Delivery, n)
	for i := range ds {
		ds[i] = storetest.Delivery(fmt.Sprintf("dlv_%04d", i), fmt.Sprintf("ep_%d", i%7), now)
	}
	require.NoError(t, s.Enqueue(ctx, ds))
	claimed, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: n, Owner: "a", LeaseUntil: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, claimed, n)

	errs := make([]error, n+1)
	var wg sync.WaitGroup
	for i := range n + 1 {
		wg.Go(func() {
			p := store.RecordParams{DeliveryID: fmt.Sprintf("dlv_%04d", i), Owner: "a", Now: now.Add(time.Second),
				State: webhook.StateSucceeded, Attempt: &webhook.Attempt{StartedAt: now, StatusCode: 204, Duration: time.Millisecond}}
			if i%10 == 0 {
				p.Owner = "b" // not the lease holder
			}
			errs[i] = s.Record(ctx, p)
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == n:
			assert.ErrorIs(t, err, webhook.ErrNotFound, "record %d", i)
		case i%10 == 0:
			assert.ErrorIs(t, err, store.ErrLeaseLost, "record %d", i)
		default:
			assert.NoError(t, err, "record %d", i)
		}
	}
	res, err := s.List(ctx, webhook.ListParams{State: webhook.StateSucceeded, Limit: n})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, n-n/10)
	as, err := s.Attempts(ctx, "dlv_0001")
	require.NoError(t, err)
	require.Len(t, as, 1)
	assert.Equal(t, 1, as[0].Number)
}

// TestNotifyAcrossStores shows that work enqueued through one Store (another process, in
// effect) wakes a listener on another, and that a lost LISTEN connection is re-established.
func TestNotifyAcrossStores(t *testing.T) {
	url := pgtest.URL(t)
	listener := newStore(t, newPool(t, url))
	writer := newStore(t, newPool(t, url))
	ctx := t.Context()
	wake := listener.Notify()
	waitWake := func(what string) {
		t.Helper()
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake-up after %s", what)
		}
	}
	waitWake("LISTEN started") // the listener announces its own start
	require.NoError(t, writer.Enqueue(ctx, []webhook.Delivery{storetest.Delivery("dlv_0001", "ep", time.Now())}))
	waitWake("Enqueue")

	// Kill the listening backend: the store reconnects and wakes its Senders, since
	// notifications may have been missed meanwhile.
	admin := newPool(t, url)
	_, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`)
	require.NoError(t, err)
	waitWake("reconnecting")
	require.NoError(t, writer.Enqueue(ctx, []webhook.Delivery{storetest.Delivery("dlv_0002", "ep", time.Now())}))
	waitWake("Enqueue after reconnecting")
}

func TestClosedStoreFails(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	s, err := pgstore.New(context.Background(), pool)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(t.Context()))
	s.Notify()
	s.Close()
	s.Close()
	assert.Error(t, s.Record(t.Context(), store.RecordParams{DeliveryID: "x", State: webhook.StateSucceeded}))
	assert.Error(t, s.Enqueue(t.Context(), []webhook.Delivery{storetest.Delivery("dlv_0001", "ep", time.Now())}))
}

// TestPruneDeletesAttempts shows that pruning a delivery removes its attempt log too: the
// attempts table has no foreign key to cascade, so Prune deletes them itself.
func TestPruneDeletesAttempts(t *testing.T) {
	pool := newPool(t, pgtest.URL(t))
	s := newStore(t, pool, pgstore.WithSchema("prune_attempts"))
	ctx := t.Context()
	now := time.Now().UTC()
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{storetest.Delivery("dlv_0001", "ep", now), storetest.Delivery("dlv_0002", "ep", now)}))
	ds, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 2, Owner: "a", LeaseUntil: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, ds, 2)
	for i, d := range ds {
		require.NoError(t, s.Record(ctx, store.RecordParams{DeliveryID: d.ID, Owner: "a", Now: now.Add(time.Duration(i) * time.Hour),
			State: webhook.StateSucceeded, Attempt: &webhook.Attempt{StartedAt: now, StatusCode: 204}}))
	}
	n, err := s.Prune(ctx, store.PruneParams{SucceededBefore: now.Add(time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var left []string
	rows, err := pool.Query(ctx, `SELECT delivery_id FROM prune_attempts.hooksmith_attempts ORDER BY delivery_id`)
	require.NoError(t, err)
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{ds[1].ID}, left, "only the kept delivery's attempt remains")
}

// TestClaimPastAnExcludedBacklog: an excluded endpoint's due backlog, larger than the
// window of earliest due deliveries that a claim excluding endpoints reads, does not hide
// the other endpoints' work behind it, and the per-endpoint cap and the ordered rule hold
// across the window and what lies past it. Without the second, per-endpoint statement
// the claim returns only what the window holds (a1); without counting what the first
// statement took, "a" gives three deliveries under a cap of two.
func TestClaimPastAnExcludedBacklog(t *testing.T) {
	s := newStore(t, newPool(t, pgtest.URL(t)))
	ctx := t.Context()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := storetest.Delivery // pending, due at the time given
	const backlog = 3000     // more than the window of a claim of 10 (1024)
	var ds []webhook.Delivery
	for i := range backlog {
		ds = append(ds, at(fmt.Sprintf("down_%05d", i), "down", now.Add(-time.Hour+time.Duration(i)*time.Millisecond)))
	}
	ds = append(ds,
		at("a2", "a", now.Add(-10*time.Minute)), at("a3", "a", now.Add(-9*time.Minute)), at("a4", "a", now.Add(-8*time.Minute)),
		at("b1", "b", now.Add(-5*time.Minute)), at("b2", "b", now.Add(-4*time.Minute)), at("b3", "b", now.Add(-3*time.Minute)),
		at("o1", "o", now.Add(-7*time.Minute)), at("o2", "o", now.Add(-6*time.Minute)),
		at("later", "c", now.Add(time.Minute)), // not due
	)
	require.NoError(t, s.Enqueue(ctx, ds))
	exclude := []string{"down"}

	// The window holds only the excluded backlog: the earliest due time is past it.
	next, err := s.NextDue(ctx, exclude)
	require.NoError(t, err)
	assert.True(t, next.Equal(now.Add(-10*time.Minute)), "NextDue past the window = %v", next)
	next, err = s.NextDue(ctx, []string{"down", "a", "b", "o"})
	require.NoError(t, err)
	assert.True(t, next.Equal(now.Add(time.Minute)), "NextDue with only the later one left = %v", next)

	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{at("a1", "a", now.Add(-2*time.Hour))})) // in the window
	next, err = s.NextDue(ctx, exclude)
	require.NoError(t, err)
	assert.True(t, next.Equal(now.Add(-2*time.Hour)), "NextDue in the window = %v", next)

	claimed, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Owner: "w", LeaseUntil: now.Add(time.Minute),
		ExcludeEndpoints: exclude, MaxPerEndpoint: 2, Ordered: []string{"o"}})
	require.NoError(t, err)
	for _, d := range claimed {
		assert.Equal(t, webhook.StateInFlight, d.State, d.ID)
		assert.Equal(t, "w", d.LeaseOwner, d.ID)
	}
	// a1 from the window, then past it in due order: a's one more under its cap of two,
	// o's first only (ordered), and b's two.
	assert.Equal(t, []string{"a1", "a2", "o1", "b1", "b2"}, storetest.IDs(claimed))

	// An uncapped claim takes the rest past the window, none of the backlog.
	claimed, err = s.Claim(ctx, store.ClaimParams{Now: now, Limit: 10, Owner: "w", LeaseUntil: now.Add(time.Minute),
		ExcludeEndpoints: exclude})
	require.NoError(t, err)
	assert.Equal(t, []string{"a3", "a4", "o2", "b3"}, storetest.IDs(claimed))

	// And the backlog is all still there for when its endpoint is not excluded.
	claimed, err = s.Claim(ctx, store.ClaimParams{Now: now, Limit: backlog + 10, Owner: "w", LeaseUntil: now.Add(time.Minute)})
	require.NoError(t, err)
	assert.Len(t, claimed, backlog)
}

// After a claim finds the due window all an excluded endpoint's backlog, claims that
// exclude endpoints step through the endpoints for a while without reading the window.
// Those claims still take expired leases first and the other endpoints' due work, and
// claims without exclusions are unchanged.
func TestClaimStepsPastAFullWindow(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, pgtest.URL(t))
	s := newStore(t, pool, pgstore.WithSchema("claim_steps"))
	pgstore.SetStepFor(s, time.Hour)
	start := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	var ds []webhook.Delivery
	for i := range 2100 { // more than the window of a claim of 64
		ds = append(ds, storetest.Delivery(fmt.Sprintf("down_%04d", i), "down", start.Add(time.Duration(i)*time.Millisecond)))
	}
	for i := range 10 {
		ds = append(ds, storetest.Delivery(fmt.Sprintf("up_%02d", i), "up", start.Add(time.Minute+time.Duration(i)*time.Second)))
	}
	ds = append(ds, storetest.Delivery("lease_00", "other", start), storetest.Delivery("lease_01", "another", start))
	require.NoError(t, s.Enqueue(ctx, ds))

	t0 := time.Now()
	// claim claims at t0+at, leasing for an hour (a limit of 1: a second, to expire),
	// excluding exclude.
	claim := func(at time.Duration, limit, per int, exclude ...string) []string {
		t.Helper()
		lease := time.Hour
		if limit == 1 {
			lease = time.Second
		}
		got, err := s.Claim(ctx, store.ClaimParams{Now: t0.Add(at), Limit: limit, Owner: "w",
			LeaseUntil: t0.Add(at + lease), ExcludeEndpoints: exclude, MaxPerEndpoint: per})
		require.NoError(t, err)
		return storetest.IDs(got)
	}
	// A lease that will have expired: claimed by an owner that then goes away.
	require.Equal(t, []string{"lease_00"}, claim(0, 1, 0, "down", "up", "another"))
	require.False(t, pgstore.Stepping(s), "stepping before any claim found a full window")

	// The expired lease first, then up's earliest, within the cap of 4.
	assert.Equal(t, []string{"lease_00", "up_00", "up_01", "up_02", "up_03"}, claim(2*time.Second, 64, 4, "down", "another"),
		"the claim that found the window full")
	require.True(t, pgstore.Stepping(s), "a claim found the window all excluded backlog")

	// More leases to expire, claimed while stepping: one of another endpoint, five of
	// one more than its cap of 4 allows. Then a claim while stepping.
	require.Equal(t, []string{"lease_01"}, claim(3*time.Second, 1, 0, "down", "up"))
	var many []webhook.Delivery
	for i := range 5 {
		many = append(many, storetest.Delivery(fmt.Sprintf("many_%d", i), "many", start.Add(time.Duration(i)*time.Millisecond)))
	}
	require.NoError(t, s.Enqueue(ctx, many))
	for i := range 5 {
		require.Equal(t, []string{fmt.Sprintf("many_%d", i)}, claim(3*time.Second, 1, 0, "down", "up", "another"))
	}
	require.NoError(t, s.Enqueue(ctx, []webhook.Delivery{storetest.Delivery("other_00", "other", start.Add(2*time.Minute))}))
	assert.Equal(t, []string{"lease_01", "many_0", "many_1", "many_2", "many_3", "up_04", "up_05", "up_06", "up_07", "other_00"},
		claim(5*time.Second, 64, 4, "down"), "a claim while stepping: expired leases within the cap, then due work")
	// NextDue while stepping: the earliest due of the endpoints not excluded, or, with
	// none due, the earliest lease to expire (many_4's, leased at 3s for a second).
	next, err := s.NextDue(ctx, []string{"down"})
	require.NoError(t, err)
	assert.True(t, next.Equal(start.Add(time.Minute+8*time.Second)), "NextDue excluding down: %s, want up_08's due time", next)
	next, err = s.NextDue(ctx, []string{"down", "up"})
	require.NoError(t, err)
	assert.True(t, next.Equal(t0.Add(4*time.Second).Truncate(time.Microsecond)), "NextDue excluding down and up: %s, want many_4's lease", next)
	require.True(t, pgstore.Stepping(s))
	for _, id := range []string{"down_0000", "down_2099"} {
		d, err := s.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, webhook.StatePending, d.State, "excluded %s", id)
	}
	assert.Equal(t, 2103, len(claim(5*time.Second, 3000, 0)), "without exclusions: down's backlog, up's last two and many_4")
}
