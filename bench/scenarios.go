package main

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hooksmith/webhook"
)

// BacklogResult is the backlog scenario: a million deliveries held for an endpoint whose
// receiver hangs, then drained.
type BacklogResult struct {
	Workers       int `json:"workers"`
	Pending       int `json:"pending"`
	PayloadBytes  int `json:"payload_bytes"`
	EnvelopeBytes int `json:"envelope_bytes"`
	// The heap the backlog holds (HeapAlloc after runtime.GC, less the same before it),
	// per pending delivery and beyond its payload.
	HeapPerDelivery float64 `json:"heap_bytes_per_delivery"`
	BeyondPayload   float64 `json:"heap_bytes_beyond_payload"`
	EnqueuePerSec   float64 `json:"enqueue_per_sec"`
	PeakRSSMiB      float64 `json:"peak_rss_mib"`
	// GCCycleHeldMillis is the collector's CPU for one cycle (runtime.GC) with the
	// backlog held, GCCycleBaseMillis the same before it.
	GCCycleHeldMillis float64 `json:"gc_cycle_held_cpu_ms"`
	GCCycleBaseMillis float64 `json:"gc_cycle_base_cpu_ms"`
	// SteadyPerSec is the Sender's own steady rate with the same options on an empty
	// store, in the same run. The whole drain is from the switch to the answering URL
	// until the receiver has every delivery but the hung one.
	SteadyPerSec       float64 `json:"steady_per_sec"`
	WholeDrainSeconds  float64 `json:"whole_drain_seconds"`
	WholeDrainPerSec   float64 `json:"whole_drain_per_sec"`
	WholeDrainToSteady float64 `json:"whole_drain_ratio_to_steady"`
	// The process's CPU seconds over the whole drain and the collector's share of them.
	WholeDrainCPU   float64 `json:"whole_drain_cpu_seconds"`
	WholeDrainGCCPU float64 `json:"whole_drain_gc_cpu_seconds"`
	// Rounds holds every round's WholeDrainToSteady; the figures above are the median
	// round's, but WorstBeyondPayload, the largest BeyondPayload of the rounds.
	Rounds             []float64 `json:"round_drain_ratios_to_steady,omitempty"`
	WorstBeyondPayload float64   `json:"worst_heap_bytes_beyond_payload"`
}

// backlog runs -rounds rounds of backlogRound, each on a fresh store, and reports the
// round with the median drain: one drain swings by half on this machine.
func (b *bench) backlog() (*BacklogResult, error) {
	rounds := make([]*BacklogResult, max(1, b.cfg.rounds))
	for i := range rounds {
		b.logf("backlog: round %d/%d", i+1, len(rounds))
		r, err := b.backlogRound()
		if err != nil {
			return nil, err
		}
		rounds[i] = r
	}
	byRatio := slices.Clone(rounds)
	slices.SortFunc(byRatio, func(a, b *BacklogResult) int { return cmp.Compare(a.WholeDrainToSteady, b.WholeDrainToSteady) })
	med := byRatio[len(byRatio)/2]
	for _, r := range rounds {
		med.Rounds = append(med.Rounds, r.WholeDrainToSteady)
		med.WorstBeyondPayload = max(med.WorstBeyondPayload, r.BeyondPayload)
	}
	return med, nil
}

// backlogRound measures the Sender's steady rate, Sends -backlog-count events to an
// endpoint that hangs, measures the heap they hold, then drains them.
func (b *bench) backlogRound() (*BacklogResult, error) {
	workers := b.cfg.workers[0]
	urls := b.urls(1)
	res := &BacklogResult{Workers: workers, Pending: b.cfg.backlogCount, PayloadBytes: b.cfg.payload,
		EnvelopeBytes: len(b.envelope())}
	b.logf("backlog: the Sender's steady rate, %d workers...", workers)
	steady, err := b.measure(modeHooksmithFull, workers, 1, b.hooksmith(workers, urls, true))
	if err != nil {
		return nil, err
	}
	res.SteadyPerSec = steady.PerSec

	// Send makes no delivery for a disabled endpoint, so "receiver down" is a receiver
	// that hangs: the endpoint may have one attempt in flight (MaxInFlight 1), held by
	// /hang/, and every other delivery waits pending. Draining points it at the
	// answering path with the Sender's full concurrency, then releases the hang.
	eps, types := b.benchEndpoints(urls)
	drainTo := eps[0]
	eps[0].URL, eps[0].MaxInFlight = b.rcv.base+"/hang/0", 1
	s, closeAll, err := b.newSender(b.cfg.store, -1, webhook.WithEndpoints(eps...), webhook.WithWorkers(workers),
		webhook.WithEndpointConcurrency(workers))
	if err != nil {
		return nil, err
	}
	defer closeAll(10 * time.Second)
	resetPeakRSS()
	res.GCCycleBaseMillis = forcedGCMillis()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	_, hung, err := b.rcv.counts()
	if err != nil {
		return nil, err
	}

	b.logf("backlog: sending %d events to a hanging endpoint...", b.cfg.backlogCount)
	var sent, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		n := b.cfg.backlogCount / workers
		if w == 0 {
			n += b.cfg.backlogCount % workers
		}
		wg.Go(func() {
			ev := webhook.Event{Type: types[0], Data: b.payload}
			for range n {
				if ids, err := s.Send(context.Background(), ev); err != nil || len(ids) == 0 {
					failed.Add(1)
				} else {
					sent.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res.EnqueuePerSec = float64(sent.Load()) / time.Since(start).Seconds()
	if failed.Load() > 0 || sent.Load() == 0 {
		return nil, fmt.Errorf("backlog: %d of %d Sends failed or stored nothing", failed.Load(), b.cfg.backlogCount)
	}
	res.GCCycleHeldMillis = forcedGCMillis()
	runtime.ReadMemStats(&ms)
	res.HeapPerDelivery = float64(int64(ms.HeapAlloc)-int64(base)) / float64(sent.Load())
	res.BeyondPayload = res.HeapPerDelivery - float64(b.cfg.payload)
	res.PeakRSSMiB = float64(peakRSS()) / (1 << 20)

	b.logf("backlog: draining...")
	if err := b.rcv.reset(); err != nil {
		return nil, err
	}
	drainStart, cpu0, gc0 := time.Now(), take(0, 0), gcCPU()
	if err := s.UpdateEndpoint(drainTo); err != nil {
		return nil, err
	}
	if err := b.rcv.releaseHangs(); err != nil {
		return nil, err
	}
	if res.WholeDrainSeconds, err = b.waitDrained(sent.Load()-hung, drainStart); err != nil {
		return nil, err
	}
	res.WholeDrainPerSec = float64(sent.Load()-hung) / res.WholeDrainSeconds
	res.WholeDrainCPU, res.WholeDrainGCCPU = (take(0, 0).cpu - cpu0.cpu).Seconds(), gcCPU()-gc0
	res.WholeDrainToSteady = ratio(res.WholeDrainPerSec, res.SteadyPerSec)
	return res, nil
}

// waitDrained polls the receiver until it has answered n deliveries since its last
// reset, and returns the seconds since start. It gives up after a minute beyond what
// draining at 1,000/s would take.
func (b *bench) waitDrained(n int64, start time.Time) (float64, error) {
	deadline := start.Add(time.Minute + time.Duration(n)*time.Millisecond)
	for {
		ok, _, err := b.rcv.counts()
		if err != nil {
			return 0, err
		}
		if ok >= n {
			return time.Since(start).Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("backlog: the receiver has %d of %d deliveries after %s", ok, n, time.Since(start).Round(time.Second))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HOLResult is the head-of-line scenario: healthy endpoints' throughput while a tenth of
// the endpoints hang until the attempt timeout, against the healthy ones alone.
type HOLResult struct {
	Workers        int     `json:"workers"`
	Endpoints      int     `json:"endpoints"`
	Hanging        int     `json:"hanging"`
	Timeout        string  `json:"timeout"`
	Warmup         string  `json:"warmup"`
	AlonePerSec    float64 `json:"healthy_alone_per_sec"`
	MixedPerSec    float64 `json:"healthy_with_hanging_per_sec"`
	Ratio          float64 `json:"ratio"`
	HungPerSec     float64 `json:"hanging_requests_per_sec"`
	MixedSendError int64   `json:"send_errors"`
	// Paired holds the slices: the figures above are the median slices' and the
	// median of the per-cycle ratios.
	Paired *HOLPaired `json:"paired,omitempty"`
}

// HOLPaired is the head-of-line scenario measured in paired slices, as the paired
// throughput scenario measures its modes: three Senders, the healthy endpoints alone,
// the same again (the control) and all the endpoints, each fed by its own paused load
// and run alone for one slice a cycle, in rotating order. The mixed Sender's hanging
// attempts go on while it is paused, so its circuits and backlog stay as the warm-up
// left them.
type HOLPaired struct {
	Slice       string       `json:"slice"`
	Settle      string       `json:"settle"`
	Cycles      int          `json:"cycles"`
	Modes       []PairedMode `json:"modes"`
	Comparisons []Comparison `json:"comparisons"` // mixed and alone-again, each vs alone
}

// The paired head-of-line scenario's modes.
const (
	modeHOLAlone      = "hol-alone"
	modeHOLAloneAgain = "hol-alone-again"
	modeHOLMixed      = "hol-mixed"
)

func (b *bench) hol() (*HOLResult, error) {
	workers := b.cfg.workers[0]
	n := b.cfg.holEndpoints
	res := &HOLResult{Workers: workers, Endpoints: n, Timeout: b.cfg.holTimeout.String(),
		Warmup: max(b.cfg.warmup, b.cfg.holWarmup).String()}
	var healthy, all []string
	hanging := map[string]bool{} // URLs
	for i := range n {
		if i%10 == 9 {
			u := b.rcv.base + "/hang/" + strconv.Itoa(i)
			all = append(all, u)
			hanging[u] = true
			res.Hanging++
			continue
		}
		u := b.rcv.base + "/e/" + strconv.Itoa(i)
		healthy = append(healthy, u)
		all = append(all, u)
	}
	return res, b.holPaired(res, healthy, all, hanging)
}

// holStarter starts a head-of-line load on urls: a Sender of their endpoints, fed by
// workers goroutines. pgstore has no bound of its own: on it, as in the throughput modes,
// the healthy endpoints' unfinished deliveries are bounded by the feeders (feedWindow),
// or the feeders, sending as fast as they can, outrun the deliveries and take the
// machine's CPU from them, and the ratio measures how the CPU is shared rather than
// blocking. counted bounds them so on every store, and has the load count them (for the
// paired drain). The hanging endpoints' deliveries are exempt: they never finish in the
// window. Stopping aborts the hanging attempts.
func (b *bench) holStarter(workers int, urls []string, hanging map[string]bool, counted bool) starter {
	return func(l *load) (func(), error) {
		eps, types := b.benchEndpoints(urls)
		exempt := map[string]bool{}
		for i, u := range urls {
			if hanging[u] {
				exempt[types[i]] = true
			}
		}
		w, wopts := b.feedWindow(b.queueCapacity(workers), exempt, counted)
		if counted {
			l.outstanding = func() int { return len(w.slots) }
		}
		return b.feedSender(l, workers, w, types, 0, 100*time.Millisecond, append(wopts, webhook.WithEndpoints(eps...),
			webhook.WithWorkers(workers), webhook.WithTimeout(b.cfg.holTimeout))...)
	}
}

// holPaired runs the head-of-line scenario in paired slices (see HOLPaired) and fills
// res with the median slices and the mixed phase's median ratio to alone.
func (b *bench) holPaired(res *HOLResult, healthy, all []string, hanging map[string]bool) error {
	workers := res.Workers
	modes := []string{modeHOLAlone, modeHOLAloneAgain, modeHOLMixed}
	urls := map[string][]string{modeHOLAlone: healthy, modeHOLAloneAgain: healthy, modeHOLMixed: all}
	// The hanging endpoints take a timeout to fill the workers, and any protection (a
	// circuit breaker) some failures to react: warm each up past both.
	loads, stop, err := b.startPaused(modes, func(m string) starter { return b.holStarter(workers, urls[m], hanging, true) },
		max(b.cfg.warmup, b.cfg.holWarmup), "hol")
	defer stop()
	if err != nil {
		return err
	}
	_, hung0, err := b.rcv.counts()
	if err != nil {
		return err
	}
	t0 := time.Now()
	ms, err := b.cycles(loads, modes, b.cfg.holCycles, "hol")
	if err != nil {
		return err
	}
	_, hung1, err := b.rcv.counts()
	if err != nil {
		return err
	}
	p := &HOLPaired{Slice: b.cfg.slice.String(), Settle: b.cfg.settle.String(), Cycles: b.cfg.holCycles, Modes: ms,
		Comparisons: []Comparison{compareModes(ms, 2, 0), compareModes(ms, 1, 0)}} // mixed, then the control
	res.Paired = p
	res.AlonePerSec, res.MixedPerSec = p.Modes[0].MedianPerSec, p.Modes[2].MedianPerSec
	res.Ratio = p.Comparisons[0].Median
	// Hanging requests start whichever mode runs: the mixed Sender's attempts go on
	// while it is paused.
	res.HungPerSec = float64(hung1-hung0) / time.Since(t0).Seconds()
	res.MixedSendError = loads[2].errors.Load()
	return nil
}
