package filestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
	"github.com/hooksmith/webhook/webhooktest"
)

// benchCallers is how many goroutines call Enqueue at once, as that many concurrent Sends
// would.
const benchCallers = 64

// BenchmarkEnqueueParallel measures durable Enqueues of one delivery each (what one Send
// to one endpoint stores) from 64 concurrent callers, against the memory store as a
// baseline. The file store's figure is bounded by fsyncs per second times deliveries per
// group commit.
func BenchmarkEnqueueParallel(b *testing.B) {
	body := []byte(`{"id":"msg_01JDQ0000000000000000000","type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","version":"1","data":{"invoice":"in_1234567890","amount":4200,"currency":"eur","customer":"cus_0987654321"}}`)
	stores := []struct {
		name string
		open func(b *testing.B) webhook.Store
	}{
		{"file", func(b *testing.B) webhook.Store { s, _ := openStore(b); return s }},
		{"file-nosync", func(b *testing.B) webhook.Store { s, _ := openStore(b, filestore.WithNoSync(true)); return s }},
		{"memory", func(*testing.B) webhook.Store { return webhook.NewMemoryStore(-1) }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			ctx := b.Context()
			var seq atomic.Int64
			now := time.Now()
			b.SetParallelism((benchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				d := []webhook.Delivery{{EventID: "msg_1", EventType: "invoice.paid", EndpointID: "ep_1",
					Version: "1", Body: body, CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}}
				for pb.Next() {
					d[0].ID = fmt.Sprintf("dlv_%020d", seq.Add(1))
					if err := s.Enqueue(ctx, d); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkSendParallel measures durable Sends (one endpoint each) from 64 concurrent
// callers through a Sender on the file store, while its workers deliver over an
// in-memory transport and record the results in the same file.
func BenchmarkSendParallel(b *testing.B) {
	fs, _ := openStore(b)
	tr := webhooktest.NewTransport()
	s, err := webhook.NewSender(webhook.WithStore(fs), webhook.WithTransport(tr),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_1", URL: "https://example.com/hook", Secret: webhook.NewSecret()}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	data := json.RawMessage(`{"invoice":"in_1234567890","amount":4200,"currency":"eur"}`)
	b.SetParallelism((benchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Send(ctx, webhook.Event{Type: "invoice.paid", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
	b.StopTimer()
	closeCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = s.Close(closeCtx) // undelivered deliveries stay in the file, as after a restart
}
