// Package scenario_test runs the Sender the way its users meet it: the system clock, real
// loopback receivers that fail, throttle, hang and come back, and only the public API.
// Each scenario asserts that every accepted event is delivered within a bound derived
// from the policy it runs with. Waits are on the receivers' own signals, never on sleeps;
// a scenario sleeps only where its subject is time passing (a receiver that is down for a
// while).
package scenario_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// call is one request as a receiver's answer function sees it.
type call struct {
	EventID string
	N       int // this event's arrival number at this receiver, from 1
	At      time.Time
}

// answer is what a receiver replies to a call.
type answer struct {
	Status     int           // 0 means 204
	RetryAfter string        // a Retry-After header, when set
	Delay      time.Duration // held this long before answering
}

// arrival is one request a receiver got.
type arrival struct {
	At     time.Time
	Status int
}

// receiver is a real HTTP server on 127.0.0.1 that verifies signatures, answers each
// request as its answer function says, and records every request by event ID. It can be
// taken down (connections refused) and brought back on the same address.
type receiver struct {
	t      testing.TB
	secret string
	verify *webhook.Verifier

	mu        sync.Mutex
	addr      string
	srv       *http.Server
	answerFn  func(call) answer
	arrivals  map[string][]arrival
	delivered map[string]time.Time // first 2xx answer per event
	requests  int
	bad       int // requests that failed verification
	changed   chan struct{}
	closing   chan struct{}
}

// newReceiver starts a receiver that verifies with secret, or a new secret if none.
func newReceiver(t testing.TB, secret ...string) *receiver {
	t.Helper()
	if len(secret) == 0 {
		secret = []string{webhook.NewSecret()}
	}
	v, err := webhook.NewVerifier(secret[0])
	require.NoError(t, err)
	r := &receiver{t: t, secret: secret[0], verify: v, arrivals: map[string][]arrival{},
		delivered: map[string]time.Time{}, changed: make(chan struct{}), closing: make(chan struct{})}
	r.answerFn = func(call) answer { return answer{} }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() {
		close(r.closing)
		r.down()
	})
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

// endpoint returns an endpoint for this receiver.
func (r *receiver) endpoint(id string) webhook.Endpoint {
	return webhook.Endpoint{ID: id, URL: r.url(), Secret: r.secret}
}

// answer replaces the answer function.
func (r *receiver) answer(fn func(call) answer) {
	r.mu.Lock()
	r.answerFn = fn
	r.mu.Unlock()
}

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: nullLog}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every connection: attempts are refused until up.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (r *receiver) up() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	require.NoError(r.t, err)
	r.serve(ln)
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, webhook.DefaultMaxBodyBytes))
	now := time.Now()
	if err == nil {
		err = r.verify.Verify(req.Header, body)
	}
	id := req.Header.Get(webhook.HeaderID)
	r.mu.Lock()
	r.requests++
	if err != nil {
		r.bad++
		r.mu.Unlock()
		r.notify()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	c := call{EventID: id, N: len(r.arrivals[id]) + 1, At: now}
	a := r.answerFn(c)
	if a.Status == 0 {
		a.Status = http.StatusNoContent
	}
	r.arrivals[id] = append(r.arrivals[id], arrival{At: now, Status: a.Status})
	r.mu.Unlock()
	if a.Delay > 0 {
		t := time.NewTimer(a.Delay)
		select {
		case <-t.C:
		case <-req.Context().Done():
		case <-r.closing:
		}
		t.Stop()
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	w.WriteHeader(a.Status)
	if a.Status >= 200 && a.Status < 300 {
		r.mu.Lock()
		if _, ok := r.delivered[id]; !ok {
			r.delivered[id] = time.Now()
		}
		r.mu.Unlock()
	}
	r.notify()
}

// notify wakes whoever waits on the receiver's state.
func (r *receiver) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// waitUntil blocks until cond, evaluated under the receiver's lock after every request,
// holds, or fails the test when ctx ends first.
func (r *receiver) waitUntil(ctx context.Context, what string, cond func() bool) {
	r.t.Helper()
	for {
		r.mu.Lock()
		ok, ch := cond(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			r.t.Fatalf("%s: not reached in time (%d delivered, %d requests)", what, r.deliveredCount(), r.requestCount())
		}
	}
}

// waitDelivered waits until n distinct events have been answered 2xx.
func (r *receiver) waitDelivered(ctx context.Context, n int) {
	r.t.Helper()
	r.waitUntil(ctx, fmt.Sprintf("%d events delivered", n), func() bool { return len(r.delivered) >= n })
}

func (r *receiver) deliveredCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered)
}

func (r *receiver) requestCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func (r *receiver) deliveredAt(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.delivered[id]
	return at, ok
}

func (r *receiver) arrivalsOf(id string) []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arrivals[id])
}

func (r *receiver) badRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// nullLog silences the servers' own error logs (connections cut by down).
var nullLog = log.New(io.Discard, "", 0)

var loopback = webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8"))

// newSender builds a Sender on the system clock that may reach loopback receivers, and
// closes it when the test ends.
func newSender(t testing.TB, opts ...webhook.Option) *webhook.Sender {
	t.Helper()
	s, err := webhook.NewSender(append([]webhook.Option{loopback}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// sent records when each event was accepted.
type sent struct {
	mu sync.Mutex
	at map[string]time.Time
}

func newSent() *sent { return &sent{at: map[string]time.Time{}} }

// sendN sends n events of type typ with IDs prefix-0 ... prefix-(n-1), requiring each to be
// accepted, and returns their IDs.
func (sn *sent) sendN(ctx context.Context, t testing.TB, s *webhook.Sender, prefix, typ string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		sn.mu.Lock()
		sn.at[ids[i]] = time.Now()
		sn.mu.Unlock()
		_, err := s.Send(ctx, webhook.Event{ID: ids[i], Type: typ, Data: map[string]int{"n": i}})
		require.NoError(t, err)
	}
	return ids
}

func (sn *sent) sentAt(id string) time.Time {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return sn.at[id]
}

// latencies returns, for each of ids the receiver got, the time from Send to its
// first 2xx answer, sorted.
func latencies(sn *sent, r *receiver, ids []string) []time.Duration {
	var out []time.Duration
	for _, id := range ids {
		if at, ok := r.deliveredAt(id); ok {
			out = append(out, at.Sub(sn.sentAt(id)))
		}
	}
	sortDurations(out)
	return out
}

func sortDurations(ds []time.Duration) { slices.Sort(ds) }

// quantile returns the q-th quantile of sorted durations, 0 for none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// within returns a context that ends after d, cancelled when the test ends.
func within(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
