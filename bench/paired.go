package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// The paired scenario measures the throughput modes' deliveries/s ratios with much less
// of the machine's noise than the throughput scenario's rounds. Those run each mode for a
// second, one after another, and other tenants' load shifts between them: a round's ratio
// swings by ±30% and a median of seven by ±0.05 from run to run, about the margins the
// targets are decided by.
//
// Here every mode's load is started once and kept, paused, beside the others. A cycle
// runs each mode alone for a short slice (-slice, after -settle to get going), pausing it
// and waiting until everything it issued has arrived before the next mode starts, so no
// slice carries another mode's deliveries. The order rotates from cycle to cycle, so every
// mode takes every place in a cycle equally often. Each cycle gives one ratio per pair of
// modes, measured within about a second of each other; the report is the median of those
// ratios over the cycles, with a distribution-free 95% confidence interval (the sign
// test's). A second ceiling load (ceiling-again) is the control: its ratio to the
// ceiling should be 1.00x, and its interval is what the method can resolve on this
// machine in this run.
//
// Keeping every load alive costs each mode a little: their idle goroutines and
// connections are scanned by every collection. That cost falls on all modes alike.

// PairedResult is the paired scenario's report.
type PairedResult struct {
	Slice  string        `json:"slice"`
	Settle string        `json:"settle"`
	Cycles int           `json:"cycles"`
	Blocks []PairedBlock `json:"blocks"`
}

// PairedBlock is one worker count's cycles.
type PairedBlock struct {
	Workers     int          `json:"workers"`
	Modes       []PairedMode `json:"modes"`
	Comparisons []Comparison `json:"comparisons"`
}

// PairedMode is one mode's slices.
type PairedMode struct {
	Mode         string    `json:"mode"`
	PerSec       []float64 `json:"deliveries_per_sec"` // by cycle
	MedianPerSec float64   `json:"median_deliveries_per_sec"`
	// CPUMicrosPer is the measured process's CPU per delivery over all of the mode's
	// slices.
	CPUMicrosPer float64 `json:"cpu_us_per_delivery"`
	// ReceiverCPUMicrosPer is the receiver process's CPU per delivery over the same
	// slices: loopback TCP charges each side part of the other's network stack, so a
	// mode's cost to the machine is the two together.
	ReceiverCPUMicrosPer float64 `json:"receiver_cpu_us_per_delivery,omitempty"`
}

// Comparison is a mode's deliveries/s over a baseline's, cycle by cycle.
type Comparison struct {
	Mode     string    `json:"mode"`
	Baseline string    `json:"baseline"`
	Ratios   []float64 `json:"ratios"`
	Median   float64   `json:"median"`
	Low      float64   `json:"ci95_low"`
	High     float64   `json:"ci95_high"`
}

// comparison returns c's comparison of mode with baseline, if both ran.
func (c PairedBlock) comparison(mode, baseline string) (Comparison, bool) {
	for _, x := range c.Comparisons {
		if x.Mode == mode && x.Baseline == baseline {
			return x, true
		}
	}
	return Comparison{}, false
}

// pairedModes returns the modes the paired scenario runs: the ceiling first, its control,
// then the other selected modes.
func pairedModes(selected []string) []string {
	out := []string{modeCeiling, modeCeilingAgain}
	for _, m := range selected {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func (b *bench) paired() (*PairedResult, error) {
	res := &PairedResult{Slice: b.cfg.slice.String(), Settle: b.cfg.settle.String(), Cycles: b.cfg.cycles}
	for _, workers := range b.cfg.workers {
		blk, err := b.pairedBlock(workers)
		if err != nil {
			return nil, fmt.Errorf("%d workers: %w", workers, err)
		}
		res.Blocks = append(res.Blocks, blk)
	}
	return res, nil
}

func (b *bench) pairedBlock(workers int) (PairedBlock, error) {
	blk := PairedBlock{Workers: workers}
	modes := pairedModes(b.cfg.modes)
	urls := b.urls(b.cfg.endpoints)
	label := fmt.Sprintf("paired: %d workers", workers)
	loads, stop, err := b.startPaused(modes, func(m string) starter { return b.starter(m, workers, urls) }, b.cfg.warmup, label)
	defer stop()
	if err != nil {
		return blk, err
	}
	ms, err := b.cycles(loads, modes, b.cfg.cycles, label)
	if err != nil {
		return blk, err
	}
	blk.Modes = ms
	compare := func(i, base int) { blk.Comparisons = append(blk.Comparisons, compareModes(ms, i, base)) }
	// The hooksmith modes are compared with naive, and with ceiling-headers (the same
	// request bytes without the Sender), which splits their gap to the ceiling into
	// what the request's headers cost and what the Sender does.
	naive := slices.Index(modes, modeNaive)
	headers := slices.Index(modes, modeCeilingHeader)
	for i, m := range modes {
		if m == modeCeiling {
			continue
		}
		compare(i, 0)
		if m != modeHooksmith && m != modeHooksmithFull {
			continue
		}
		for _, base := range []int{headers, naive} {
			if base >= 0 {
				compare(i, base)
			}
		}
	}
	return blk, nil
}

// startPaused resets the receiver, starts a load of each mode with start, paused (its
// goroutines park before their first request; no send stamps, as latency is the
// throughput scenario's), and warms each up alone for warmup. stop resumes and stops
// the loads started, and is to be called whether or not err is nil.
func (b *bench) startPaused(modes []string, start func(mode string) starter, warmup time.Duration, label string) (loads []*load, stop func(), err error) {
	var stops []func()
	stop = func() {
		for i, l := range loads {
			l.resume()
			stops[i]()
		}
	}
	if err := b.rcv.reset(); err != nil {
		return nil, stop, err
	}
	for _, m := range modes {
		l := &load{}
		l.pause()
		s, err := start(m)(l)
		if err != nil {
			return loads, stop, fmt.Errorf("%s: %w", m, err)
		}
		loads, stops = append(loads, l), append(stops, s)
	}
	b.logf("%s, warming up %s...", label, modes)
	for i := range loads {
		if _, err := b.slice(loads, i, warmup); err != nil {
			return loads, stop, fmt.Errorf("warming up %s: %w", modes[i], err)
		}
	}
	return loads, stop, nil
}

// cycles runs n cycles of loads, each cycle every load alone for one slice in an order
// that rotates from cycle to cycle, and returns each mode's slices: deliveries/s per
// cycle, and CPU per delivery (the measured process's and the receiver's) over them all.
func (b *bench) cycles(loads []*load, modes []string, n int, label string) ([]PairedMode, error) {
	perSec := make([][]float64, len(modes))
	delivered := make([]int64, len(modes))
	cpu, rcpu := make([]time.Duration, len(modes)), make([]time.Duration, len(modes))
	for c := range n {
		b.logf("%s, cycle %d/%d", label, c+1, n)
		for j := range modes {
			i := (j + c) % len(modes)
			s, err := b.slice(loads, i, b.cfg.slice)
			if err != nil {
				return nil, fmt.Errorf("%s, cycle %d: %w", modes[i], c+1, err)
			}
			perSec[i] = append(perSec[i], s.perSec())
			delivered[i] += s.delivered
			cpu[i] += s.cpu
			rcpu[i] += s.receiverCPU
		}
	}
	out := make([]PairedMode, len(modes))
	for i, m := range modes {
		out[i] = PairedMode{Mode: m, PerSec: perSec[i], MedianPerSec: medianValue(perSec[i])}
		if delivered[i] > 0 {
			out[i].CPUMicrosPer = micros(cpu[i]) / float64(delivered[i])
			out[i].ReceiverCPUMicrosPer = micros(rcpu[i]) / float64(delivered[i])
		}
	}
	return out, nil
}

// compareModes compares ms[i] with ms[base] cycle by cycle: the median of the per-cycle
// ratios of their deliveries/s, with its 95% interval.
func compareModes(ms []PairedMode, i, base int) Comparison {
	rs := make([]float64, len(ms[i].PerSec))
	for c := range rs {
		rs[c] = ratio(ms[i].PerSec[c], ms[base].PerSec[c])
	}
	med, lo, hi := medianCI(rs)
	return Comparison{Mode: ms[i].Mode, Baseline: ms[base].Mode, Ratios: rs, Median: med, Low: lo, High: hi}
}

// sliceResult is one mode's measured slice.
type sliceResult struct {
	delivered int64
	took      time.Duration
	cpu       time.Duration
	// receiverCPU is the receiver process's CPU in the slice.
	receiverCPU time.Duration
}

func (s sliceResult) perSec() float64 { return float64(s.delivered) / s.took.Seconds() }

// slice runs loads[i] alone: it resumes it, lets it settle, measures it for d, then
// pauses it and waits until all it issued has arrived (or failed).
func (b *bench) slice(loads []*load, i int, d time.Duration) (sliceResult, error) {
	var s sliceResult
	l := loads[i]
	l.resume()
	time.Sleep(b.cfg.settle)
	ok0, _, err := b.rcv.counts()
	var rcpu0, rcpu1 time.Duration
	if err == nil {
		rcpu0, err = b.rcv.cpu()
	}
	if err != nil {
		l.pause()
		return s, err
	}
	cpu0, t0 := processCPU(), time.Now()
	time.Sleep(d)
	ok1, _, err := b.rcv.counts()
	cpu1, t1 := processCPU(), time.Now()
	if err == nil {
		rcpu1, err = b.rcv.cpu()
	}
	l.pause()
	if err != nil {
		return s, err
	}
	s = sliceResult{delivered: ok1 - ok0, took: t1.Sub(t0), cpu: cpu1 - cpu0, receiverCPU: rcpu1 - rcpu0}
	return s, b.drain(loads)
}

// drain waits until every load's goroutines are parked and the receiver has answered
// every sequence number issued that did not fail (or, for loads that count what they
// have outstanding, until none has any): then no request of one mode is still in
// flight when the next starts.
func (b *bench) drain(loads []*load) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var issued, failed, outstanding int64
		held, counted := true, false
		for _, l := range loads {
			held = held && l.held()
			issued += l.next.Load()
			failed += l.errors.Load()
			if l.outstanding != nil {
				counted = true
				outstanding += int64(l.outstanding())
			}
		}
		switch {
		case !held:
		case counted:
			if outstanding == 0 {
				return nil
			}
		default:
			ok, _, err := b.rcv.counts()
			if err != nil {
				return err
			}
			if ok+failed >= issued {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("a paused load did not drain within 10s (%d issued, %d failed)", issued, failed)
		}
		time.Sleep(time.Millisecond)
	}
}

// medianValue returns the median of xs (the mean of the middle two for an even count).
func medianValue(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianCI returns the median of xs and a 95% confidence interval for it that assumes
// nothing of the distribution: the order statistics k and n+1-k (1-based), k the
// largest with P(B < k) ≤ 2.5% for B binomial(n, 1/2). With fewer than 6 figures no
// such k exists, and the interval is the whole range.
func medianCI(xs []float64) (med, lo, hi float64) {
	n := len(xs)
	if n == 0 {
		return 0, 0, 0
	}
	s := slices.Sorted(slices.Values(xs))
	k := 0 // P(B ≤ k-1) ≤ 0.025 for the k found
	for cdf := 0.0; ; k++ {
		cdf += binomHalf(n, k)
		if cdf > 0.025 {
			break
		}
	}
	if k == 0 {
		return medianValue(s), s[0], s[n-1]
	}
	return medianValue(s), s[k-1], s[n-k]
}

// binomHalf is P(B = k) for B binomial(n, 1/2).
func binomHalf(n, k int) float64 {
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x + 1)); return v }
	return math.Exp(lg(n) - lg(k) - lg(n-k) - float64(n)*math.Ln2)
}
