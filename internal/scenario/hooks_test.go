package scenario_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hooksmith/webhook"
)

// circuitEvent is one OnCircuitChange call, with when it came.
type circuitEvent struct {
	At         time.Time
	EndpointID string
	Health     webhook.EndpointHealth
}

// observer collects what a Sender's hooks report.
type observer struct {
	mu       sync.Mutex
	circuit  []circuitEvent
	disabled []string
	attempts []webhook.AttemptReport
	changed  chan struct{}
}

func newObserver() *observer { return &observer{changed: make(chan struct{})} }

func (o *observer) hooks() webhook.Option {
	return webhook.WithHooks(webhook.Hooks{
		OnCircuitChange: func(id string, h webhook.EndpointHealth) {
			o.add(func() { o.circuit = append(o.circuit, circuitEvent{At: time.Now(), EndpointID: id, Health: h}) })
		},
		OnEndpointDisabled: func(id, _ string) { o.add(func() { o.disabled = append(o.disabled, id) }) },
		OnAttempt:          func(r webhook.AttemptReport) { o.add(func() { o.attempts = append(o.attempts, r) }) },
	})
}

func (o *observer) add(fn func()) {
	o.mu.Lock()
	fn()
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// waitFor blocks until cond holds (evaluated under the observer's lock), failing t when
// ctx ends first.
func (o *observer) waitFor(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for {
		o.mu.Lock()
		ok, ch := cond(), o.changed
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%s: not seen in time", what)
		}
	}
}

func (o *observer) circuitEvents() []circuitEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]circuitEvent(nil), o.circuit...)
}

func (o *observer) attemptReports() []webhook.AttemptReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]webhook.AttemptReport(nil), o.attempts...)
}

// opened returns the circuit openings reported.
func (o *observer) opened() []circuitEvent {
	var out []circuitEvent
	for _, e := range o.circuitEvents() {
		if e.Health.Circuit == webhook.CircuitOpen {
			out = append(out, e)
		}
	}
	return out
}

// waitDelivered waits until the Sender has reported every one of eventIDs delivered.
func (o *observer) waitDelivered(ctx context.Context, t testing.TB, eventIDs []string) {
	t.Helper()
	want := make(map[string]bool, len(eventIDs))
	for _, id := range eventIDs {
		want[id] = true
	}
	o.waitFor(ctx, t, "every event delivered", func() bool {
		got := map[string]bool{}
		for _, a := range o.attempts {
			if a.Verdict == webhook.Delivered && want[a.Delivery.EventID] {
				got[a.Delivery.EventID] = true
			}
		}
		return len(got) == len(want)
	})
}
