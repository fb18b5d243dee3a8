package main

import (
	"cmp"
	"context"
	"encoding/json"
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
	Workers         int       `json:"workers"`
	Pending         int       `json:"pending"`
	PayloadBytes    int       `json:"payload_bytes"`
	EnvelopeBytes   int       `json:"envelope_bytes"`
	EnvelopeCap     int       `json:"envelope_cap_bytes"`
	HeapPerDelivery float64   `json:"heap_bytes_per_delivery"`
	BeyondEnvelope  float64   `json:"heap_bytes_beyond_envelope"`
	BeyondPayload   float64   `json:"heap_bytes_beyond_payload"`
	EnqueuePerSec   float64   `json:"enqueue_per_sec"`
	PeakRSSMiB      float64   `json:"peak_rss_mib"`
	DrainPerSec     float64   `json:"drain_per_sec"`
	DrainLabel      string    `json:"drain_label"`
	CeilingPerSec   float64   `json:"ceiling_per_sec"` // the mean of the runs before and after
	CeilingRuns     []float64 `json:"ceiling_runs_per_sec"`
	DrainRatio      float64   `json:"drain_ratio_to_ceiling"`
	// HeldCeilingPerSec is the ceiling measured while the backlog is held, before the
	// drain: the same large heap for the collector to mark, with the Sender idle.
	HeldCeilingPerSec float64 `json:"held_ceiling_per_sec"`
	HeldCeilingCPU    float64 `json:"held_ceiling_cpu_us_per_delivery"`
	DrainRatioToHeld  float64 `json:"drain_ratio_to_held_ceiling"`
	HeapHeldMiB       float64 `json:"heap_held_mib"`
	// HeapReleasedMiB is HeapAlloc after the store is released and collected, before
	// the last ceiling: it shows the release took.
	HeapReleasedMiB float64 `json:"heap_released_mib"`
	DrainCPUMicros  float64 `json:"drain_cpu_us_per_delivery"`
	// WholeDrainSeconds is the time from the switch to the answering URL until the
	// receiver has every delivery of the backlog but the hung one (answered 503 on
	// release, its retry is due seconds later), and WholeDrainPerSec those deliveries
	// over it: the window above measures only the drain's start.
	WholeDrainSeconds float64 `json:"whole_drain_seconds"`
	WholeDrainPerSec  float64 `json:"whole_drain_per_sec"`
	// The measured process's CPU seconds over the whole drain, the garbage collector's
	// share of them (runtime/metrics /cpu/classes/gc/total, which counts mark workers
	// running on otherwise idle Ps too) and its cycles meanwhile.
	WholeDrainCPU    float64 `json:"whole_drain_cpu_seconds"`
	WholeDrainGCCPU  float64 `json:"whole_drain_gc_cpu_seconds"`
	WholeDrainGCs    uint32  `json:"whole_drain_gcs"`
	WholeDrainRatio  float64 `json:"whole_drain_ratio_to_ceiling"`
	CeilingCPUMicros float64 `json:"ceiling_cpu_us_per_delivery"`
	// GCCycleHeldMillis is the collector's CPU for one cycle (runtime.GC) with the
	// backlog held, GCCycleBaseMillis the same before the backlog: the marking a backlog
	// costs the host process each cycle.
	GCCycleHeldMillis float64 `json:"gc_cycle_held_cpu_ms"`
	// SentBeyondPayload is BeyondPayload measured as soon as the last Send returned,
	// before a lookup made the store take in its intake.
	SentBeyondPayload float64 `json:"heap_bytes_beyond_payload_as_sent"`
	GCCycleBaseMillis float64 `json:"gc_cycle_base_cpu_ms"`
	// Rounds and HeldRounds hold every round's DrainRatio and DrainRatioToHeld
	// (-rounds; each round a fresh backlog); the figures above are those of the round
	// with the median WholeDrainRatio.
	Rounds     []float64 `json:"round_drain_ratios,omitempty"`
	HeldRounds []float64 `json:"round_drain_ratios_to_held,omitempty"`
	// WholeRounds holds every round's WholeDrainRatio.
	WholeRounds []float64 `json:"round_whole_drain_ratios,omitempty"`
	// WorstBeyondPayload is the largest BeyondPayload of the rounds, which the target
	// is held to.
	WorstBeyondPayload float64 `json:"worst_heap_bytes_beyond_payload"`
}

// backlog runs -rounds rounds of backlogRound, each on a fresh store, and reports the
// round with the median whole-drain ratio: one drain swings by half on this machine.
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
	slices.SortFunc(byRatio, func(a, b *BacklogResult) int { return cmp.Compare(a.WholeDrainRatio, b.WholeDrainRatio) })
	med := byRatio[len(byRatio)/2]
	for _, r := range rounds {
		med.Rounds = append(med.Rounds, r.DrainRatio)
		med.WholeRounds = append(med.WholeRounds, r.WholeDrainRatio)
		med.HeldRounds = append(med.HeldRounds, r.DrainRatioToHeld)
		med.WorstBeyondPayload = max(med.WorstBeyondPayload, r.BeyondPayload)
	}
	return med, nil
}

// backlogRound: Send -backlog-count events to a disabled endpoint, measure the heap they
// hold, then enable it and measure the drain rate against the ceiling of the same run.
func (b *bench) backlogRound() (*BacklogResult, error) {
	workers := b.cfg.workers[0]
	urls := b.urls(1)
	b.logf("backlog: ceiling, %d workers...", workers)
	ceil, err := b.measure(modeCeiling, workers, 1, b.ceiling(workers, urls, false))
	if err != nil {
		return nil, err
	}
	res := &BacklogResult{Workers: workers, Pending: b.cfg.backlogCount, PayloadBytes: b.cfg.payload,
		DrainLabel: "WithEndpointConcurrency(workers), so the one endpoint may use every worker"}

	// Send skips disabled endpoints (no delivery is made for them), so "receiver down"
	// is a receiver that hangs: the endpoint may have one attempt in flight (MaxInFlight
	// 1), held by /hang/, and every other delivery waits pending. Draining points it at
	// the answering path with the Sender's full concurrency, then releases the hang.
	eps, types := b.benchEndpoints(urls)
	drainTo := eps[0]
	eps[0].URL, eps[0].MaxInFlight = b.rcv.base+"/hang/0", 1
	s, closeAll, err := b.newSender(b.cfg.store, -1, nil, webhook.WithEndpoints(eps...), webhook.WithWorkers(workers),
		webhook.WithEndpointConcurrency(workers))
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			closeAll(10 * time.Second)
		}
	}()
	resetPeakRSS()
	res.GCCycleBaseMillis = forcedGCMillis()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	b.logf("backlog: sending %d events to a hanging endpoint...", b.cfg.backlogCount)
	var first atomic.Value
	var sent, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	per := b.cfg.backlogCount / workers
	for w := range workers {
		n := per
		if w == 0 {
			n += b.cfg.backlogCount % workers
		}
		wg.Go(func() {
			ev := webhook.Event{Type: types[0], Data: b.payload}
			for range n {
				ids, err := s.Send(context.Background(), ev)
				if err != nil || len(ids) == 0 {
					failed.Add(1)
					continue
				}
				sent.Add(1)
				first.CompareAndSwap(nil, ids[0])
			}
		})
	}
	wg.Wait()
	res.EnqueuePerSec = float64(sent.Load()) / time.Since(start).Seconds()
	if failed.Load() > 0 || sent.Load() == 0 {
		return nil, fmt.Errorf("backlog: %d of %d Sends failed or stored nothing", failed.Load(), b.cfg.backlogCount)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.SentBeyondPayload = float64(int64(ms.HeapAlloc)-int64(base))/float64(sent.Load()) - float64(b.cfg.payload)
	// A lookup takes in what the dispatcher has not yet taken from the store's intake
	// (Send's deliveries wait there by value until a claim absorbs them), so the figures
	// below are the backlog as the store holds it.
	d, err := s.Delivery(context.Background(), first.Load().(string))
	if err != nil {
		return nil, err
	}
	res.GCCycleHeldMillis = forcedGCMillis()
	runtime.ReadMemStats(&ms)
	res.PeakRSSMiB = float64(peakRSS()) / (1 << 20)
	res.HeapPerDelivery = float64(int64(ms.HeapAlloc)-int64(base)) / float64(sent.Load())
	res.EnvelopeBytes, res.EnvelopeCap = len(d.Body), cap(d.Body)
	res.BeyondEnvelope = res.HeapPerDelivery - float64(len(d.Body))
	res.BeyondPayload = res.HeapPerDelivery - float64(b.cfg.payload)

	// The attempts held by /hang/ (read before a measurement resets the receiver's
	// counts): answered 503 when the drain starts, they are retried seconds later.
	_, hung, err := b.rcv.counts()
	if err != nil {
		return nil, err
	}
	// ceilingNow measures the ceiling and returns the heap (HeapAlloc, MiB) it ran with.
	ceilingNow := func(what, profileAs string) (ModeResult, float64, error) {
		runtime.ReadMemStats(&ms)
		heap := float64(ms.HeapAlloc) / (1 << 20)
		b.logf("backlog: ceiling %s...", what)
		r, err := b.measureAs(modeCeiling, profileAs, workers, 1, b.ceiling(workers, urls, false))
		return r, heap, err
	}
	// The ceiling with the backlog held (the Sender idle behind its one hung attempt):
	// what the collector's marking of a heap this size costs raw net/http, to tell that
	// cost apart from the Sender's own.
	held, heap, err := ceilingNow("with the backlog held", modeBacklogHeld)
	if err != nil {
		return nil, err
	}
	res.HeapHeldMiB = heap
	res.HeldCeilingPerSec, res.HeldCeilingCPU = held.PerSec, held.CPUMicrosPer

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
	time.Sleep(b.cfg.warmup)
	ok0, _, err := b.rcv.counts()
	if err != nil {
		return nil, err
	}
	s0 := take(ok0, 0)
	prof := b.startProfile(modeBacklogDrain)
	time.Sleep(b.cfg.duration)
	ok1, _, err := b.rcv.counts()
	b.stopProfile(prof)
	if err != nil {
		return nil, err
	}
	s1 := take(ok1, 0)
	n := float64(s1.delivered - s0.delivered)
	res.DrainPerSec = n / s1.at.Sub(s0.at).Seconds()
	if n > 0 {
		res.DrainCPUMicros = micros(s1.cpu-s0.cpu) / n
	}
	res.DrainRatioToHeld = ratio(res.DrainPerSec, held.PerSec)
	b.logf("backlog: waiting for the rest of the drain...")
	if res.WholeDrainSeconds, err = b.waitDrained(sent.Load()-hung, drainStart); err != nil {
		return nil, err
	}
	res.WholeDrainPerSec = float64(sent.Load()-hung) / res.WholeDrainSeconds
	cpu1 := take(0, 0)
	res.WholeDrainCPU, res.WholeDrainGCCPU = (cpu1.cpu - cpu0.cpu).Seconds(), gcCPU()-gc0
	res.WholeDrainGCs = cpu1.gcs - cpu0.gcs
	closeAll(10 * time.Second)
	closed = true
	s = nil
	// The ceiling again once the store is gone, so that load from other processes that
	// comes and goes during the scenario weighs on both sides of the ratio alike.
	closeAll = nil // the last reference to the store
	runtime.GC()
	ceil2, heap, err := ceilingNow("again, the store released", modeCeiling)
	if err != nil {
		return nil, err
	}
	res.HeapReleasedMiB = heap
	res.CeilingRuns = []float64{ceil.PerSec, ceil2.PerSec}
	res.CeilingPerSec = (ceil.PerSec + ceil2.PerSec) / 2
	res.CeilingCPUMicros = (ceil.CPUMicrosPer + ceil2.CPUMicrosPer) / 2
	res.DrainRatio = ratio(res.DrainPerSec, res.CeilingPerSec)
	res.WholeDrainRatio = ratio(res.WholeDrainPerSec, res.CeilingPerSec)
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
	// Rounds holds every round's ratio (-rounds; each round runs alone, then mixed);
	// the figures above are the median round's.
	Rounds []float64 `json:"round_ratios,omitempty"`
	// Paired is set when the scenario ran in paired slices (-hol-cycles): the figures
	// above are then the median slices' and the median of the per-cycle ratios.
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
	if b.cfg.holCycles > 0 {
		return res, b.holPaired(res, healthy, all, hanging)
	}
	runOne := func(mode string, urls []string) (perSec, hungPerSec float64, errs int64, err error) {
		if err := b.rcv.reset(); err != nil {
			return 0, 0, 0, err
		}
		l := &load{}
		stop, err := b.holStarter(workers, urls, hanging, false)(l)
		if err != nil {
			return 0, 0, 0, err
		}
		// The hanging endpoints take a timeout to fill the workers, and any protection
		// (a circuit breaker) some failures to react: warm up past both.
		time.Sleep(max(b.cfg.warmup, b.cfg.holWarmup))
		ok0, hung0, err0 := b.rcv.counts()
		t0 := time.Now()
		prof := b.startProfile(mode)
		time.Sleep(b.cfg.duration)
		b.stopProfile(prof)
		ok1, hung1, err1 := b.rcv.counts()
		secs := time.Since(t0).Seconds()
		stop()
		if err := cmpErr(err0, err1); err != nil {
			return 0, 0, 0, err
		}
		return float64(ok1-ok0) / secs, float64(hung1-hung0) / secs, l.errors.Load(), nil
	}
	// Rounds alternate alone and mixed, so slow drifts in the machine's load weigh on
	// both; the median round's pair is reported.
	rounds := make([]HOLResult, max(1, b.cfg.rounds))
	for i := range rounds {
		r := &rounds[i]
		var err error
		b.logf("hol: round %d/%d: %d healthy endpoints alone...", i+1, len(rounds), len(healthy))
		if r.AlonePerSec, _, _, err = runOne(modeHOLAlone, healthy); err != nil {
			return nil, err
		}
		b.logf("hol: round %d/%d: %d endpoints, %d hanging...", i+1, len(rounds), n, res.Hanging)
		if r.MixedPerSec, r.HungPerSec, r.MixedSendError, err = runOne(modeHOLMixed, all); err != nil {
			return nil, err
		}
		r.Ratio = ratio(r.MixedPerSec, r.AlonePerSec)
		res.Rounds = append(res.Rounds, r.Ratio)
	}
	slices.SortFunc(rounds, func(a, b HOLResult) int { return cmp.Compare(a.Ratio, b.Ratio) })
	med := rounds[len(rounds)/2]
	res.AlonePerSec, res.MixedPerSec, res.Ratio = med.AlonePerSec, med.MixedPerSec, med.Ratio
	res.HungPerSec, res.MixedSendError = med.HungPerSec, med.MixedSendError
	return res, nil
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

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// SendLatencyResult is how long Send takes for concurrent callers while the Sender
// delivers, at 1.2 times the calibrated full speed (saturated: a backlog builds, so the
// Sender delivers flat out) and at half of it.
type SendLatencyResult struct {
	Workers        int                `json:"workers"`
	Callers        int                `json:"callers"`
	FullSpeed      float64            `json:"calibrated_deliveries_per_sec"`
	CalibrationRun string             `json:"calibration"`
	QueueCapacity  int                `json:"queue_capacity"`
	Phases         []SendLatencyPhase `json:"phases"`
}

// SendLatencyPhase is one offered load.
type SendLatencyPhase struct {
	Load          float64 `json:"offered_fraction_of_full_speed"`
	OfferedPerSec float64 `json:"offered_sends_per_sec"`
	Sends         int     `json:"sends"`
	DeliveredPer  float64 `json:"delivered_per_sec_during"`
	BacklogGrowth float64 `json:"backlog_growth_per_sec"`
	// Sends, P50Micros to MaxMicros are the Sends whose caller built the event's data
	// just before (a fresh copy of the payload, as a real caller marshals its own).
	P50Micros  float64 `json:"send_p50_us"`
	P99Micros  float64 `json:"send_p99_us"`
	P999Micros float64 `json:"send_p999_us"`
	MaxMicros  float64 `json:"send_max_us"`
	// The First figures are the other half of the calls, alternating with those: the
	// same callers Send prebuilt data, so Send makes the caller's first allocation since
	// its ticker woke it. That allocation pays a cost whatever code makes it (timing an
	// allocation before Send moved it there; timing json.Valid there did not), most
	// likely the collector's assist, which the runtime charges per goroutine.
	FirstSends int     `json:"first_alloc_sends"`
	FirstP50   float64 `json:"first_alloc_send_p50_us"`
	FirstP99   float64 `json:"first_alloc_send_p99_us"`
	FirstP999  float64 `json:"first_alloc_send_p999_us"`
	// Control is a Send-sized piece of work that shares nothing (json.Valid of the
	// payload and a 512-byte allocation), timed by the same callers right after each
	// Send: what scheduling and GC alone add on this machine at this load.
	ControlP50Micros float64 `json:"control_p50_us"`
	ControlP99Micros float64 `json:"control_p99_us"`
	// The same control repeated ControlReps times, the count chosen from the warm-up so
	// that its median matches Send's: the tail any work of Send's length gets here, as
	// the chance of being preempted grows with a call's length.
	ControlReps     int     `json:"sized_control_reps"`
	SizedControlP50 float64 `json:"sized_control_p50_us"`
	SizedControlP99 float64 `json:"sized_control_p99_us"`
	GCs             uint32  `json:"gcs"`
	Errors          int64   `json:"errors"`
}

var sink []byte

// control is the Send-sized work that shares no state with other callers.
func control(payload []byte) {
	if json.Valid(payload) {
		sink = make([]byte, 512)
	}
}

// sendLatency calibrates the full-speed delivery rate in this process, then offers a
// fraction of it from -callers paced goroutines and times every Send, alternating
// between data built just before it and prebuilt data (see SendLatencyPhase). The queue
// is the default 100,000, so Send never waits for room within the window.
func (b *bench) sendLatency() (*SendLatencyResult, error) {
	workers := b.cfg.workers[0]
	urls := b.urls(1)
	b.logf("send-latency: calibrating with hooksmith-full, %d workers...", workers)
	cal, err := b.measure(modeHooksmithFull, workers, 1, b.hooksmith(workers, urls, true))
	if err != nil {
		return nil, err
	}
	if cal.PerSec <= 0 {
		return nil, fmt.Errorf("send-latency: calibration delivered nothing")
	}
	res := &SendLatencyResult{Workers: workers, Callers: b.cfg.callers, FullSpeed: cal.PerSec,
		QueueCapacity: webhook.DefaultQueueCapacity, CalibrationRun: "hooksmith-full closed loop, same process"}
	for _, load := range []float64{1.2, 0.5} {
		b.logf("send-latency: %d callers offering %.1fx full speed...", b.cfg.callers, load)
		ph, err := b.sendLatencyPhase(workers, urls, load*cal.PerSec)
		if err != nil {
			return nil, err
		}
		ph.Load = load
		res.Phases = append(res.Phases, ph)
	}
	return res, nil
}

func (b *bench) sendLatencyPhase(workers int, urls []string, offered float64) (SendLatencyPhase, error) {
	ph := SendLatencyPhase{OfferedPerSec: offered}
	eps, types := b.benchEndpoints(urls)
	s, closeAll, err := b.newSender(b.cfg.store, webhook.DefaultQueueCapacity, nil, webhook.WithEndpoints(eps...),
		webhook.WithWorkers(workers), webhook.WithEndpointConcurrency(workers))
	if err != nil {
		return ph, err
	}
	if err := b.rcv.reset(); err != nil {
		closeAll(0)
		return ph, err
	}
	interval := time.Duration(float64(b.cfg.callers) / offered * float64(time.Second))
	perCaller := int(float64(b.cfg.duration)/float64(interval)) + 16
	durs := make([][]int64, b.cfg.callers)
	first := make([][]int64, b.cfg.callers)
	ctrl := make([][]int64, b.cfg.callers)
	sized := make([][]int64, b.cfg.callers)
	var reps atomic.Int64 // 0 during the warm-up
	var recording, stopping atomic.Bool
	var errs atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	caller := func(c int) func() {
		return func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			prebuilt := webhook.Event{Type: types[0], Data: b.payload}
			for tick := 0; !stopping.Load(); tick++ {
				<-t.C
				ev, built := prebuilt, tick%2 == 0
				if built {
					ev.Data = append(json.RawMessage(nil), b.payload...)
				}
				start := time.Now()
				_, err := s.Send(ctx, ev)
				d := time.Since(start)
				if err != nil && ctx.Err() == nil {
					errs.Add(1)
				}
				start = time.Now()
				control(b.payload)
				cd := time.Since(start)
				var sd time.Duration
				if k := reps.Load(); k > 0 {
					start = time.Now()
					for range k {
						control(b.payload)
					}
					sd = time.Since(start)
				}
				if (recording.Load() || reps.Load() == 0) && len(ctrl[c]) < cap(ctrl[c]) {
					if built {
						durs[c] = append(durs[c], int64(d))
					} else {
						first[c] = append(first[c], int64(d))
					}
					ctrl[c] = append(ctrl[c], int64(cd))
					sized[c] = append(sized[c], int64(sd))
				}
			}
		}
	}
	for c := range b.cfg.callers {
		durs[c] = make([]int64, 0, perCaller)
		first[c] = make([]int64, 0, perCaller)
		ctrl[c] = make([]int64, 0, perCaller)
		sized[c] = make([]int64, 0, perCaller)
		wg.Go(caller(c))
	}
	time.Sleep(b.cfg.warmup)
	// Size the second control from the warm-up's medians, then start afresh. (Callers
	// still appending warm-up samples lose them to the reset: they are not recorded.)
	stopping.Store(true)
	wg.Wait()
	var wd, wc []int64
	for c := range durs {
		wd, wc = append(wd, durs[c]...), append(wc, ctrl[c]...)
		durs[c], first[c], ctrl[c], sized[c] = durs[c][:0], first[c][:0], ctrl[c][:0], sized[c][:0]
	}
	k := int64(1)
	if sp, cp := percentiles(wd, 0.5), percentiles(wc, 0.5); len(wd) > 0 && cp[0] > 0 {
		k = max(1, int64((sp[0]+cp[0]/2)/cp[0]))
	}
	reps.Store(k)
	ph.ControlReps = int(k)
	stopping.Store(false)
	for c := range b.cfg.callers {
		wg.Go(caller(c))
	}
	time.Sleep(b.cfg.warmup / 2)
	ok0, _, err0 := b.rcv.counts()
	s0 := take(ok0, 0)
	recording.Store(true)
	time.Sleep(b.cfg.duration)
	recording.Store(false)
	ok1, _, err1 := b.rcv.counts()
	s1 := take(ok1, 0)
	stopping.Store(true)
	cancel()
	wg.Wait()
	closeAll(10 * time.Second)
	if err := cmpErr(err0, err1); err != nil {
		return ph, err
	}
	var all, fall, call, sall []int64
	for c := range durs {
		all = append(all, durs[c]...)
		fall = append(fall, first[c]...)
		call = append(call, ctrl[c]...)
		sall = append(sall, sized[c]...)
	}
	cp := percentiles(call, 0.5, 0.99)
	ph.ControlP50Micros, ph.ControlP99Micros = micros(cp[0]), micros(cp[1])
	sp := percentiles(sall, 0.5, 0.99)
	ph.SizedControlP50, ph.SizedControlP99 = micros(sp[0]), micros(sp[1])
	secs := s1.at.Sub(s0.at).Seconds()
	ph.Sends = len(all)
	ph.DeliveredPer = float64(s1.delivered-s0.delivered) / secs
	ph.BacklogGrowth = float64(ph.Sends)/secs - ph.DeliveredPer
	ph.GCs = s1.gcs - s0.gcs
	ph.Errors = errs.Load()
	p := percentiles(all, 0.5, 0.99, 0.999, 1)
	ph.P50Micros, ph.P99Micros, ph.P999Micros, ph.MaxMicros = micros(p[0]), micros(p[1]), micros(p[2]), micros(p[3])
	ph.FirstSends = len(fall)
	fp := percentiles(fall, 0.5, 0.99, 0.999)
	ph.FirstP50, ph.FirstP99, ph.FirstP999 = micros(fp[0]), micros(fp[1]), micros(fp[2])
	return ph, nil
}
