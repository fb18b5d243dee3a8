package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/hooksmith/webhook"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Mode names.
const (
	modeCeiling       = "ceiling"
	modeCeilingHeader = "ceiling-headers"
	modeNaive         = "naive"
	modeHooksmith     = "hooksmith"
	modeHooksmithFull = "hooksmith-full"
	// modeCeilingAgain is the paired scenario's control: a second, separate ceiling load,
	// whose ratio to the first shows what the method itself can resolve.
	modeCeilingAgain = "ceiling-again"
)

var allModes = []string{modeCeiling, modeCeilingHeader, modeNaive, modeHooksmith, modeHooksmithFull}

var modeLabels = map[string]string{
	modeCeiling:       "raw net/http keep-alive, C goroutines, no signing, no queue",
	modeCeilingHeader: "the ceiling with a Sender's request headers (Standard Webhooks, version, user agent), their values computed once: what the request's bytes cost without signing or queue",
	modeNaive:         "go-retryablehttp default client + StandardSigner + json.Marshal, C goroutines",
	modeHooksmith:     "Sender, -store (see settings), default per-endpoint concurrency (fair share, bursting when alone)",
	modeHooksmithFull: "Sender, -store (see settings), WithEndpointConcurrency(workers)",
	modeCeilingAgain:  "paired only: a second ceiling load, the control (should be 1.00x of the ceiling)",
}

// ModeResult is one mode's figures from one measured window.
type ModeResult struct {
	Mode       string  `json:"mode"`
	Label      string  `json:"label"`
	Workers    int     `json:"workers"`
	Endpoints  int     `json:"endpoints"`
	Seconds    float64 `json:"seconds"`
	Deliveries int64   `json:"deliveries"`
	PerSec     float64 `json:"deliveries_per_sec"`
	// Latency is from just before the request (or Send) to the receiver's arrival
	// stamp, over sequence numbers issued in the window that arrived.
	P50Micros      float64 `json:"p50_us"`
	P99Micros      float64 `json:"p99_us"`
	LatencySamples int     `json:"latency_samples"`
	Undelivered    int64   `json:"undelivered_in_window"`
	AllocsPer      float64 `json:"allocs_per_delivery"`
	BytesPer       float64 `json:"bytes_per_delivery"`
	CPUMicrosPer   float64 `json:"cpu_us_per_delivery"`
	GCs            uint32  `json:"gcs"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	PeakRSSIsLife  bool    `json:"peak_rss_is_lifetime,omitempty"`
	Errors         int64   `json:"errors"`
}

// load is one running load generator: it issues sequence numbers, stamps their send
// times and counts its errors.
type load struct {
	next     atomic.Int64
	sendAt   []int64
	stopping atomic.Bool
	errors   atomic.Int64
	wg       sync.WaitGroup
	// gate, when set, holds the load's goroutines before their next request or Send
	// (the paired scenario's pause); running counts the goroutines.
	gate    atomic.Pointer[gate]
	running atomic.Int32
	// outstanding, if set, counts what the load issued that has yet to finish, for a
	// load some of whose requests never arrive (the head-of-line scenario's hanging
	// endpoints): the paired drain waits for it to reach 0 rather than for arrivals.
	outstanding func() int
}

// gate is one pause of a load. Each pause has its own, so that a goroutine still
// leaving the last pause's gate is not counted as held by this one.
type gate struct {
	ch     chan struct{}
	parked atomic.Int32
}

// spawn starts one of the load's goroutines.
func (l *load) spawn(f func()) {
	l.running.Add(1)
	l.wg.Go(f)
}

// pass waits while the load is paused. Every goroutine calls it (in nextSeq) before it
// issues a sequence number, so a paused load issues nothing more once all are parked.
func (l *load) pass() {
	if g := l.gate.Load(); g != nil {
		g.parked.Add(1)
		<-g.ch
	}
}

// pause holds the load's goroutines at their next pass; resume lets them go.
func (l *load) pause() { l.gate.Store(&gate{ch: make(chan struct{})}) }

func (l *load) resume() {
	if g := l.gate.Swap(nil); g != nil {
		close(g.ch)
	}
}

// held reports whether every goroutine of a paused load is parked at this pause's gate.
func (l *load) held() bool {
	g := l.gate.Load()
	return g != nil && g.parked.Load() == l.running.Load()
}

// feed starts n goroutines that Send events round-robin over types, with data, until
// the load stops; with w non-nil each first takes a slot of the window, unless its type
// is exempt (released by the Sender's hook once the delivery is final, or here if Send
// fails).
func (l *load) feed(ctx context.Context, s *webhook.Sender, n int, w *window, types []string, data any) {
	for range n {
		l.spawn(func() {
			for !l.stopping.Load() {
				seq := l.nextSeq() // stamped once it has its slot: waiting for one is not latency
				typ := types[seq%int64(len(types))]
				slot := w.takes(typ)
				if slot && !w.acquire(ctx) {
					return
				}
				if _, err := s.Send(ctx, webhook.Event{ID: l.stamp(seq), Type: typ, Data: data}); err != nil {
					if slot {
						w.release()
					}
					if ctx.Err() == nil {
						l.errors.Add(1)
					}
				}
			}
		})
	}
}

// nextSeq returns the next sequence number, once the load is not paused.
func (l *load) nextSeq() int64 {
	l.pass()
	return l.next.Add(1) - 1
}

// issue returns the next sequence number and its event ID, stamping the send time.
func (l *load) issue() (int64, string) {
	seq := l.nextSeq()
	return seq, l.stamp(seq)
}

// stamp returns seq's event ID, stamping its send time.
func (l *load) stamp(seq int64) string {
	if seq < int64(len(l.sendAt)) {
		l.sendAt[seq] = time.Now().UnixNano()
	}
	return "evt_" + strconv.FormatInt(seq, 10)
}

// bench holds what every mode and scenario shares within one run.
type bench struct {
	cfg     config
	rcv     *receiverProc
	sendAt  []int64
	used    int64           // sequence numbers the last load issued, to clear from sendAt
	payload json.RawMessage // the event data, -payload bytes of JSON
	secret  string
	// pg is the postgres store's pool, connected on first use; pgSchemas are the
	// schemas this run created, dropped at the end if still there.
	pg        *pgxpool.Pool
	pgSchemas []string
}

// starter starts a load of one mode and returns a function that stops it and waits.
type starter func(l *load) (stop func(), err error)

// measure runs one mode: warm-up, then a measured window of -duration.
func (b *bench) measure(mode string, workers, endpoints int, start starter) (ModeResult, error) {
	res := ModeResult{Mode: mode, Label: modeLabels[mode], Workers: workers, Endpoints: endpoints}
	if err := b.rcv.reset(); err != nil {
		return res, err
	}
	// Clear only what the last load used: clearing it all would make all of it resident.
	clear(b.sendAt[:min(b.used, int64(len(b.sendAt)))])
	res.PeakRSSIsLife = !resetPeakRSS()
	l := &load{sendAt: b.sendAt}
	stop, err := start(l)
	if err != nil {
		return res, err
	}
	time.Sleep(b.cfg.warmup)
	ok0, _, err := b.rcv.counts()
	if err != nil {
		stop()
		return res, err
	}
	s0 := take(ok0, l.next.Load())
	time.Sleep(b.cfg.duration)
	ok1, _, err := b.rcv.counts()
	s1 := take(ok1, l.next.Load())
	res.PeakRSSMiB = float64(peakRSS()) / (1 << 20)
	stop()
	b.used = l.next.Load()
	if err != nil {
		return res, err
	}
	b.fill(&res, s0, s1, l)
	return res, nil
}

// fill computes res's figures from the window s0..s1.
func (b *bench) fill(res *ModeResult, s0, s1 snapshot, l *load) {
	res.Seconds = s1.at.Sub(s0.at).Seconds()
	res.Deliveries = s1.delivered - s0.delivered
	res.PerSec = float64(res.Deliveries) / res.Seconds
	res.Errors = l.errors.Load()
	res.GCs = s1.gcs - s0.gcs
	if n := float64(res.Deliveries); n > 0 {
		res.AllocsPer = float64(s1.mallocs-s0.mallocs) / n
		res.BytesPer = float64(s1.bytes-s0.bytes) / n
		res.CPUMicrosPer = micros(s1.cpu-s0.cpu) / n
	}
	to := min(s1.seq, int64(len(l.sendAt)))
	arr, err := b.rcv.arrivals(s0.seq, to)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: reading arrivals:", err)
		return
	}
	lat := make([]int64, 0, len(arr))
	for i, at := range arr {
		sent := l.sendAt[s0.seq+int64(i)]
		if at == 0 || sent == 0 {
			res.Undelivered++
			continue
		}
		lat = append(lat, at-sent)
	}
	res.LatencySamples = len(lat)
	p := percentiles(lat, 0.5, 0.99)
	res.P50Micros, res.P99Micros = micros(p[0]), micros(p[1])
}

// urls returns the receiver URLs of n endpoints.
func (b *bench) urls(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = b.rcv.base + "/e/" + strconv.Itoa(i)
	}
	return out
}

// envelope returns a body shaped like the Sender's, for the modes that do not build one.
func (b *bench) envelope() []byte {
	body, _ := json.Marshal(webhook.Envelope{ID: envelopeID, Type: "bench.e0",
		Timestamp: time.Now().UTC(), Version: webhook.DefaultVersion, Data: b.payload})
	return body
}

// envelopeID is the event ID in envelope's body.
const envelopeID = "evt_1000000"

// drainClose reads a response body to its end so the connection is reused.
func drainClose(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// ceiling: raw keep-alive POSTs of one body from workers goroutines. With headers set,
// each request also carries the headers a Sender's does, their values computed once (see
// webhookHeaders).
func (b *bench) ceiling(workers int, urls []string, headers bool) starter {
	return func(l *load) (func(), error) {
		tr := ceilingTransport(workers, headers)
		client := &http.Client{Transport: tr}
		body := b.envelope()
		var static http.Header
		if headers {
			var err error
			if static, err = b.webhookHeaders(body); err != nil {
				return nil, err
			}
		}
		for range workers {
			l.spawn(func() {
				for !l.stopping.Load() {
					seq, id := l.issue()
					req, err := ceilingRequest(urls[seq%int64(len(urls))], body, id, static)
					if err != nil {
						l.errors.Add(1)
						continue
					}
					resp, err := client.Do(req)
					if err != nil {
						l.errors.Add(1)
						continue
					}
					if resp.StatusCode/100 != 2 {
						l.errors.Add(1)
					}
					drainClose(resp)
				}
			})
		}
		return func() { l.stopping.Store(true); l.wg.Wait(); tr.CloseIdleConnections() }, nil
	}
}

// ceilingTransport is net/http's default transport with an idle connection per worker.
// With headers set it also leaves out Accept-Encoding, as a Sender's transport does (it
// has no use for a compressed answer).
func ceilingTransport(workers int, headers bool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	tr.MaxIdleConns = 4 * workers
	tr.DisableCompression = headers
	return tr
}

// ceilingRequest is one request of the ceiling modes: a POST of body with the static
// headers (nil for the plain ceiling) and a Webhook-Id of id, the sequence number the
// receiver stamps.
func ceilingRequest(url string, body []byte, id string, static http.Header) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range static {
		req.Header[k] = v // shared slices: net/http never writes them
	}
	req.Header["Webhook-Id"] = []string{id}
	return req, nil
}

// webhookHeaders returns the headers a Sender with default options sets on a request of
// body, other than Webhook-Id: Content-Type, User-Agent, the version header and
// StandardSigner's timestamp and signature, signed once with the bench's secret.
func (b *bench) webhookHeaders(body []byte) (http.Header, error) {
	sec, err := webhook.ParseSecret(b.secret)
	if err != nil {
		return nil, err
	}
	h := http.Header{
		"Content-Type": {"application/json"},
		"User-Agent":   {webhook.DefaultUserAgent},
		http.CanonicalHeaderKey(webhook.DefaultVersionHeader): {webhook.DefaultVersion},
	}
	msg := webhook.Message{ID: envelopeID, Timestamp: time.Now(), Body: body}
	if err := (webhook.StandardSigner{}).Sign(h, msg, []webhook.Secret{sec}); err != nil {
		return nil, err
	}
	delete(h, "Webhook-Id")
	return h, nil
}

// naive: what a user writes by hand with go-retryablehttp: marshal, sign, POST.
func (b *bench) naive(workers int, urls []string) starter {
	return func(l *load) (func(), error) {
		sec, err := webhook.ParseSecret(b.secret)
		if err != nil {
			return nil, err
		}
		secrets := []webhook.Secret{sec}
		client := retryablehttp.NewClient()
		client.Logger = nil
		for range workers {
			l.spawn(func() {
				for !l.stopping.Load() {
					seq, id := l.issue()
					now := time.Now()
					body, err := json.Marshal(webhook.Envelope{ID: id, Type: "bench.e0",
						Timestamp: now.UTC(), Version: webhook.DefaultVersion, Data: b.payload})
					if err != nil {
						l.errors.Add(1)
						continue
					}
					req, err := retryablehttp.NewRequest(http.MethodPost, urls[seq%int64(len(urls))], body)
					if err != nil {
						l.errors.Add(1)
						continue
					}
					req.Header.Set("Content-Type", "application/json")
					if err := (webhook.StandardSigner{}).Sign(req.Header, webhook.Message{ID: id, Timestamp: now, Body: body}, secrets); err != nil {
						l.errors.Add(1)
						continue
					}
					resp, err := client.Do(req)
					if err != nil {
						l.errors.Add(1)
						continue
					}
					if resp.StatusCode/100 != 2 {
						l.errors.Add(1)
					}
					drainClose(resp)
				}
			})
		}
		return func() {
			l.stopping.Store(true)
			l.wg.Wait()
			client.HTTPClient.CloseIdleConnections()
		}, nil
	}
}

// benchEndpoints returns n endpoints, endpoint i receiving event type "bench.e<i>" only,
// so every Send makes exactly one delivery.
func (b *bench) benchEndpoints(urls []string) ([]webhook.Endpoint, []string) {
	eps := make([]webhook.Endpoint, len(urls))
	types := make([]string, len(urls))
	for i, u := range urls {
		types[i] = "bench.e" + strconv.Itoa(i)
		eps[i] = webhook.Endpoint{ID: fmt.Sprintf("ep%04d", i), URL: u, Secret: b.secret,
			EventTypes: []string{types[i]}}
	}
	return eps, types
}

// hooksmith: the Sender, fed by workers goroutines as fast as it drains, on a fresh
// -store bounded to the queue capacity. pgstore has no bound of its own, so on it the
// feeders keep the same bound themselves (see window).
func (b *bench) hooksmith(workers int, urls []string, full bool) starter {
	return func(l *load) (func(), error) {
		eps, types := b.benchEndpoints(urls)
		capacity := b.queueCapacity(workers)
		w, wopts := b.feedWindow(capacity, nil, false)
		opts := append([]webhook.Option{webhook.WithEndpoints(eps...), webhook.WithWorkers(workers)}, wopts...)
		if full {
			opts = append(opts, webhook.WithEndpointConcurrency(workers))
		}
		return b.feedSender(l, workers, w, types, capacity, 10*time.Second, opts...)
	}
}

// feedSender starts a Sender on -store with opts (its queue bounded to capacity, 0 for
// the store's default) and workers goroutines of l feeding it events of types, through
// w if not nil. Stopping stops the feeders and closes the Sender, waiting grace for its
// attempts.
func (b *bench) feedSender(l *load, workers int, w *window, types []string, capacity int, grace time.Duration, opts ...webhook.Option) (func(), error) {
	s, closeAll, err := b.newSender(b.cfg.store, capacity, opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.feed(ctx, s, workers, w, types, b.payload)
	return func() {
		l.stopping.Store(true)
		cancel()
		l.wg.Wait()
		closeAll(grace)
	}, nil
}

// starter returns the starter of a throughput mode.
func (b *bench) starter(mode string, workers int, urls []string) starter {
	switch mode {
	case modeCeiling, modeCeilingAgain:
		return b.ceiling(workers, urls, false)
	case modeCeilingHeader:
		return b.ceiling(workers, urls, true)
	case modeNaive:
		return b.naive(workers, urls)
	case modeHooksmith:
		return b.hooksmith(workers, urls, false)
	default: // modeHooksmithFull; -modes is checked against allModes
		return b.hooksmith(workers, urls, true)
	}
}

func (b *bench) queueCapacity(workers int) int {
	if b.cfg.queue > 0 {
		return b.cfg.queue
	}
	return 2 * workers
}

func closeSender(s *webhook.Sender, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := s.Close(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "bench: closing sender:", err)
	}
}
