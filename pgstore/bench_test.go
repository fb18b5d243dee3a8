package pgstore_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/internal/pgtest"
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
