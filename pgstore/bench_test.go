package pgstore_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/internal/pgtest"
	"github.com/hooksmith/webhook/pgstore"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
)

// benchWorkers is the Sender's worker count in BenchmarkEndToEnd.
const benchWorkers = 32

// BenchmarkEndToEnd measures deliveries per second from Send to a loopback receiver's
// 204, through the PostgreSQL store and, for comparison, the memory store. b.N events are
// sent by 8 goroutines; the clock stops when the receiver has seen them all.
//
//	go test -run '^$' -bench EndToEnd -benchtime 20000x ./pgstore/
func BenchmarkEndToEnd(b *testing.B) {
	type benchRun struct {
		target, got int64
		done        chan struct{}
	}
	var cur atomic.Pointer[benchRun]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if run := cur.Load(); atomic.AddInt64(&run.got, 1) == run.target {
			close(run.done)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	run := func(b *testing.B, store webhook.Store) {
		r := &benchRun{target: int64(b.N), done: make(chan struct{})}
		cur.Store(r)
		sender, err := webhook.NewSender(webhook.WithStore(store), webhook.WithWorkers(benchWorkers), webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
			webhook.WithEndpointConcurrency(benchWorkers),
			webhook.WithEndpoints(webhook.Endpoint{ID: "ep_bench", URL: srv.URL, Secret: webhook.NewSecret()}))
		require.NoError(b, err)
		defer sender.Close(context.Background())
		ctx := context.Background()
		b.ResetTimer()
		var wg sync.WaitGroup
		var next atomic.Int64
		for range 8 {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					if _, err := sender.Send(ctx, webhook.Event{Type: "bench.event", Data: map[string]int64{"n": i}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		<-r.done
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	}

	b.Run("memory", func(b *testing.B) { run(b, webhook.NewMemoryStore(-1)) })
	// b.Run calls this once per b.N it tries, each time on a fresh database.
	b.Run("postgres", func(b *testing.B) { run(b, newStore(b, newPool(b, pgtest.URL(b)))) })
}

// BenchmarkClaimPastExcludedBacklog is the dispatcher's claim while one endpoint is
// excluded (down, paused or at its limit) with a due backlog of 0, 1,000 or 100,000
// deliveries ahead of another endpoint's 64: ns/op is one claim of those 64 (the result
// of each is recorded outside the timer as "retry now", so every claim does the same
// work). Compare the sizes within one run: the claim should not slow down with the
// backlog it steps over. The last case spreads 1,000 over 100 excluded endpoints, as in
// the head-of-line scenario, where the claim tests every row it reads against the list.
//
//	go test -run '^$' -bench ClaimPastExcludedBacklog -benchtime 200x ./pgstore/
func BenchmarkClaimPastExcludedBacklog(b *testing.B) {
	pool := newPool(b, pgtest.URL(b))
	for _, tc := range []struct{ backlog, down int }{{0, 1}, {1000, 1}, {100_000, 1}, {1000, 100}} {
		// Set up once per case: b.Run calls its function more than once.
		ctx := context.Background()
		schema := fmt.Sprintf("bench_excluded_%d_%d", tc.backlog, tc.down)
		s := newStore(b, pool, pgstore.WithSchema(schema))
		start := time.Now().Add(-time.Hour)
		batch := make([]webhook.Delivery, 0, 1000)
		flush := func() {
			require.NoError(b, s.Enqueue(ctx, batch))
			batch = batch[:0]
		}
		exclude := make([]string, tc.down)
		for i := range exclude {
			exclude[i] = fmt.Sprintf("down%03d", i)
		}
		for i := range tc.backlog {
			batch = append(batch, storetest.Delivery(fmt.Sprintf("down_%06d", i), exclude[i%tc.down], start.Add(time.Duration(i)*time.Microsecond)))
			if len(batch) == cap(batch) {
				flush()
			}
		}
		for i := range 64 {
			batch = append(batch, storetest.Delivery(fmt.Sprintf("up_%02d", i), "up", time.Now()))
		}
		flush()
		_, err := pool.Exec(ctx, fmt.Sprintf(`ANALYZE "%s"."hooksmith_deliveries"`, schema))
		require.NoError(b, err)
		name := fmt.Sprintf("backlog-%d", tc.backlog)
		if tc.down > 1 {
			name += fmt.Sprintf("-over-%d-endpoints", tc.down)
		}
		b.Run(name, func(b *testing.B) {
			b.ResetTimer()
			for range b.N {
				now := time.Now()
				ds, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: 64, Owner: "w", LeaseUntil: now.Add(time.Minute),
					ExcludeEndpoints: exclude, MaxPerEndpoint: 32})
				require.NoError(b, err)
				require.NotEmpty(b, ds)
				recordRetryNow(b, s, ds, now)
			}
		})
	}
}

// BenchmarkClaimManyEndpoints is the dispatcher's capped claim when many endpoints share
// the queue, as when a Sender gives each of 1,000 endpoints its fair share of 64 workers:
// ns/op is one claim of 128 deliveries, at most MaxPerEndpoint (1 or 4) from each of
// 1,000 endpoints with 10 due deliveries apiece (each claimed delivery is recorded outside
// the timer as "retry now", so every claim does the same work). The uncapped claim of
// 128 from the same table is the baseline: what the cap adds is the difference.
//
//	go test -run '^$' -bench ClaimManyEndpoints -benchtime 300x ./pgstore/
func BenchmarkClaimManyEndpoints(b *testing.B) {
	const endpoints, each, limit = 1000, 10, 128
	pool := newPool(b, pgtest.URL(b))
	ctx := context.Background()
	s := newStore(b, pool, pgstore.WithSchema("bench_many_endpoints"))
	start := time.Now().Add(-time.Hour)
	batch := make([]webhook.Delivery, 0, endpoints)
	for i := range each {
		for e := range endpoints {
			batch = append(batch, storetest.Delivery(fmt.Sprintf("d_%02d_%04d", i, e), fmt.Sprintf("ep_%04d", e),
				start.Add(time.Duration(i*endpoints+e)*time.Microsecond)))
		}
		require.NoError(b, s.Enqueue(ctx, batch))
		batch = batch[:0]
	}
	_, err := pool.Exec(ctx, `ANALYZE "bench_many_endpoints"."hooksmith_deliveries"`)
	require.NoError(b, err)
	for _, perEndpoint := range []int{0, 1, 4} { // 0: the uncapped claim, the baseline
		name := fmt.Sprintf("max-per-endpoint-%d", perEndpoint)
		if perEndpoint == 0 {
			name = "uncapped"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				now := time.Now()
				ds, err := s.Claim(ctx, store.ClaimParams{Now: now, Limit: limit, Owner: "w", LeaseUntil: now.Add(time.Minute),
					MaxPerEndpoint: perEndpoint})
				require.NoError(b, err)
				require.Len(b, ds, limit)
				recordRetryNow(b, s, ds, now)
			}
		})
	}
}

// recordRetryNow records each of ds as due again at now, outside the benchmark's timer,
// so that every claim of a benchmark finds the same work.
func recordRetryNow(b *testing.B, s *pgstore.Store, ds []webhook.Delivery, now time.Time) {
	b.StopTimer()
	defer b.StartTimer()
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() { // assert, not require: FailNow must not run off the benchmark's goroutine
			assert.NoError(b, s.Record(context.Background(), store.RecordParams{DeliveryID: d.ID, Owner: "w", Now: now,
				State: webhook.StatePending, NextAttemptAt: now}))
		})
	}
	wg.Wait()
}
