package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
)

// The Sender's hot path, piece by piece. BenchmarkSign (signer_test.go) covers signing;
// the end-to-end comparison with raw net/http and go-retryablehttp is the program in
// internal/bench (scripts/bench.sh runs both and rewrites BENCHMARKS.md):
//
//	go test -run '^$' -bench 'Envelope|SendEnqueue|Scheduler|Deliver' -benchmem .

// benchData returns valid JSON of n bytes, as json.RawMessage is sent unchanged.
func benchData(n int) json.RawMessage {
	return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`)
}

// BenchmarkEnvelope measures Send up to the store: validation, the envelope built around
// the marshalled data, and the fan-out match. The one endpoint is disabled, so Send finds
// no target after building the body and stores nothing. json.Marshal of an Envelope is
// the hand-written baseline.
func BenchmarkEnvelope(b *testing.B) {
	s, err := webhook.NewSender(webhook.WithEndpoints(webhook.Endpoint{
		ID: "ep", URL: "http://127.0.0.1:1/hook", Secret: webhook.NewSecret(), Disabled: true}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	ctx := context.Background()
	type order struct {
		ID     string   `json:"id"`
		Amount int      `json:"amount"`
		Items  []string `json:"items"`
	}
	for _, tc := range []struct {
		name string
		data any
	}{
		{"raw-200B", benchData(200)},
		{"raw-1KiB", benchData(1 << 10)},
		{"struct", order{ID: "ord_123", Amount: 4200, Items: []string{"a", "b", "c"}}},
	} {
		b.Run("send-"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			ev := webhook.Event{Type: "order.created", Data: tc.data}
			for b.Loop() {
				if _, err := s.Send(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("json.Marshal-raw-200B", func(b *testing.B) {
		b.ReportAllocs()
		data := benchData(200)
		for b.Loop() {
			env := webhook.Envelope{ID: webhook.NewEventID(), Type: "order.created",
				Timestamp: time.Now().UTC(), Version: webhook.DefaultVersion, Data: data}
			if _, err := json.Marshal(env); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// holdingStore is a MemoryStore whose deliveries are never claimed, so Send's enqueue can
// be measured without deliveries competing for the CPU. (A disabled endpoint would not
// do: Send makes no delivery for it.)
type holdingStore struct{ *webhook.MemoryStore }

func (holdingStore) Claim(context.Context, store.ClaimParams) ([]webhook.Delivery, error) {
	return nil, nil
}

func (holdingStore) NextDue(context.Context, []string) (time.Time, error) {
	return time.Time{}, nil
}

// BenchmarkSendEnqueue is Send into the memory store from 64 concurrent callers, the
// whole of what a caller waits for while the Sender is not full. The store is either
// one whose claims find nothing (holding), or a plain MemoryStore, the default, whose
// one endpoint is rate limited to a token a day: the dispatcher then claims around it,
// absorbing Sends into the store's heaps and ID index as it does in use, but nothing
// is delivered. allocs/op and B/op count the dispatcher's too.
func BenchmarkSendEnqueue(b *testing.B) {
	for _, c := range []struct {
		name  string
		size  int
		plain bool // a plain MemoryStore, not a holdingStore
	}{{"64-callers-200B", 200, false}, {"64-callers-1024B", 1 << 10, false}, {"64-callers-200B-plain-store", 200, true}} {
		b.Run(c.name, func(b *testing.B) {
			size := c.size
			var store webhook.Store = holdingStore{webhook.NewMemoryStore(-1)}
			ep := webhook.Endpoint{ID: "ep", URL: "http://127.0.0.1:1/hook", Secret: webhook.NewSecret()}
			if c.plain {
				store = webhook.NewMemoryStore(-1)
				ep.RateLimit, ep.RateBurst = 1.0/86400, 1
			}
			s, err := webhook.NewSender(webhook.WithStore(store), webhook.WithEndpoints(ep))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close(context.Background()) }()
			ev := webhook.Event{Type: "order.created", Data: benchData(size)}
			b.ReportAllocs()
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := s.Send(ctx, ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkScheduler is the dispatcher's store traffic: claim a batch of due deliveries
// for 64 free workers (at most 32 per endpoint), then record each one's result. Results
// are recorded as "retry now", so the store keeps its size and every iteration does the
// same work. ns/op and allocs/op are per batch; ns/delivery divides by the batch.
func BenchmarkScheduler(b *testing.B) {
	const pending, batch = 10_000, 64
	for _, tc := range []struct {
		endpoints, excluded int
	}{{1, 0}, {100, 0}, {1000, 0}, {1000, 100}} {
		name := fmt.Sprintf("%d-endpoints", tc.endpoints)
		if tc.excluded > 0 {
			name += fmt.Sprintf("-%d-excluded", tc.excluded)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			m := webhook.NewMemoryStore(-1)
			now := time.Now()
			body := benchData(200)
			ds := make([]webhook.Delivery, pending)
			for i := range ds {
				ds[i] = webhook.Delivery{ID: fmt.Sprintf("dlv_%08d", i), EventID: fmt.Sprintf("msg_%08d", i),
					EventType: "order.created", EndpointID: fmt.Sprintf("ep%04d", i%tc.endpoints), Version: "1",
					Body: body, State: webhook.StatePending, CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}
			}
			if err := m.Enqueue(ctx, ds); err != nil {
				b.Fatal(err)
			}
			var exclude []string
			for i := range tc.excluded {
				exclude = append(exclude, fmt.Sprintf("ep%04d", i))
			}
			p := store.ClaimParams{Now: now, Limit: batch, Owner: "snd_bench", LeaseUntil: now.Add(time.Minute),
				ExcludeEndpoints: exclude, MaxPerEndpoint: batch / 2}
			claimed := 0
			b.ReportAllocs()
			for b.Loop() {
				got, err := m.Claim(ctx, p)
				if err != nil || len(got) == 0 {
					b.Fatalf("claimed %d: %v", len(got), err)
				}
				claimed += len(got)
				for _, d := range got {
					if err := m.Record(ctx, store.RecordParams{DeliveryID: d.ID, Owner: p.Owner, Now: now,
						State: webhook.StatePending, NextAttemptAt: now}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(claimed), "ns/delivery")
		})
	}
	b.Run("NextDue-1000-endpoints", func(b *testing.B) {
		ctx := context.Background()
		m := webhook.NewMemoryStore(-1)
		now := time.Now()
		var ds []webhook.Delivery
		for i := range 1000 {
			ds = append(ds, webhook.Delivery{ID: fmt.Sprintf("dlv_%08d", i), EventID: "msg_1", EventType: "order.created",
				EndpointID: fmt.Sprintf("ep%04d", i), Version: "1", Body: benchData(200), NextAttemptAt: now.Add(time.Hour)})
		}
		if err := m.Enqueue(ctx, ds); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.NextDue(ctx, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// countingTransport answers every request at once with a 204, without a network, and
// closes done at the target'th request: what is left of a delivery's cost is the
// Sender's own. (webhooktest.Transport records a copy of every request, which would
// add its own allocations and a growing heap to the figure.)
type countingTransport struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	if t.n.Add(1) == t.target {
		close(t.done)
	}
	return &http.Response{StatusCode: http.StatusNoContent, Status: "204 No Content", Proto: "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// run times b.N calls of do from n goroutines, until t has seen b.N requests.
func (t *countingTransport) run(b *testing.B, n int, do func() error) {
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := do(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		return // a failed call: t will not see b.N
	}
	<-t.done
}

// BenchmarkDeliver is the Sender's own cost per delivery, without a network: 64 callers
// Send b.N events of 200 bytes to one endpoint, and 64 workers deliver them through a
// transport that answers 204 at once (countingTransport); the clock stops when the
// transport has seen them all. ns/op and allocs/op are per delivery and include Send;
// The request sub-benchmark is the baseline: 64 goroutines build the same POST with the
// same body and hand it to the same transport, with no signing, queue or store.
//
//	go test -run '^$' -bench Deliver -benchmem .
func BenchmarkDeliver(b *testing.B) {
	const workers = 64
	data := benchData(200)
	b.Run("sender", func(b *testing.B) {
		rt := &countingTransport{target: int64(b.N), done: make(chan struct{})}
		s, err := webhook.NewSender(webhook.WithTransport(rt), webhook.WithWorkers(workers),
			webhook.WithEndpointConcurrency(workers), webhook.WithQueueCapacity(2*workers),
			webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: "http://127.0.0.1:1/hook", Secret: webhook.NewSecret()}))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = s.Close(context.Background()) }()
		ev := webhook.Event{Type: "order.created", Data: data}
		rt.run(b, workers, func() error {
			_, err := s.Send(context.Background(), ev)
			return err
		})
	})
	b.Run("request", func(b *testing.B) {
		rt := &countingTransport{target: int64(b.N), done: make(chan struct{})}
		body, err := json.Marshal(webhook.Envelope{ID: webhook.NewEventID(), Type: "order.created",
			Timestamp: time.Now().UTC(), Version: webhook.DefaultVersion, Data: data})
		if err != nil {
			b.Fatal(err)
		}
		rt.run(b, workers, func() error {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://127.0.0.1:1/hook", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := rt.RoundTrip(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		})
	})
}
