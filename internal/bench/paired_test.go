package main

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The interval is the sign test's: order statistics k and n+1-k with k the largest such
// that P(Binomial(n, 1/2) < k) ≤ 2.5%. The expected k come from binomial tables:
// P(B ≤ 1) = 0.0107 and P(B ≤ 2) = 0.0547 for n = 10; P(B ≤ 5) = 0.0207 and
// P(B ≤ 6) = 0.0577 for n = 20; P(B ≤ 13) = 0.0192 and P(B ≤ 14) = 0.0403 for n = 40.
func TestMedianCIIsTheSignTestInterval(t *testing.T) {
	for _, tc := range []struct{ n, k int }{{10, 2}, {20, 6}, {40, 14}} {
		xs := make([]float64, tc.n)
		for i := range xs {
			xs[i] = float64(tc.n - i) // reversed: medianCI must sort
		}
		med, lo, hi := medianCI(xs)
		require.Equal(t, float64(tc.k), lo, "n=%d", tc.n)
		require.Equal(t, float64(tc.n+1-tc.k), hi, "n=%d", tc.n)
		require.Equal(t, float64(tc.n+1)/2, med, "n=%d", tc.n)
	}
	// Too few figures for any k: the whole range.
	_, lo, hi := medianCI([]float64{3, 1, 2, 5, 4})
	require.Equal(t, []float64{1, 5}, []float64{lo, hi})
}

// A comparison decides its target only when the whole interval is on one side of it.
func TestCIVerdict(t *testing.T) {
	require.Equal(t, "yes", ciVerdict(Comparison{Low: 0.85, High: 0.9}, 0.85))
	require.Equal(t, "no", ciVerdict(Comparison{Low: 0.7, High: 0.849}, 0.85))
	require.Contains(t, ciVerdict(Comparison{Low: 0.84, High: 0.86}, 0.85), "undecided")
}

// A paused load's goroutines all park at pass, so held reports true and nothing more is
// issued until resume. A pause right after a resume must not count the goroutines still
// leaving the last gate as held (it did, when one counter served every pause). The waits
// spin on the condition (bounded), not on a timer.
func TestLoadPauseParksEveryGoroutine(t *testing.T) {
	l := &load{}
	l.pause() // parked before the first issue, as the paired scenario starts its loads
	for range 4 {
		l.spawn(func() {
			for !l.stopping.Load() {
				l.issue()
			}
		})
	}
	defer func() { l.stopping.Store(true); l.resume(); l.wg.Wait() }()
	waitFor(t, l.held)
	require.Zero(t, l.next.Load(), "a load paused from the start issued before resuming")

	l.resume()
	waitFor(t, func() bool { return l.next.Load() > 100 })
	l.pause()
	waitFor(t, l.held)
	parkedAt := l.next.Load()
	require.Equal(t, int32(4), l.gate.Load().parked.Load(), "held with goroutines still running")
	// Held means blocked on the gate's channel: given every chance to run, no goroutine
	// issues another (a pass that counted itself parked without waiting would).
	for range 10000 {
		runtime.Gosched()
	}
	require.Equal(t, parkedAt, l.next.Load(), "a held load issued more")
	l.resume()
	waitFor(t, func() bool { return l.next.Load() > parkedAt })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		runtime.Gosched()
	}
}

// With a paired report, its interval decides a throughput target even where the rounds'
// median says otherwise; without one, the rounds' median decides.
func TestThroughputTargetsFollowThePairedInterval(t *testing.T) {
	rounds := &report{Settings: Settings{Payload: 200, Workers: []int{64}}, Throughput: []ModeResult{
		{Mode: modeNaive, Workers: 64, RoundFigures: []float64{0.5}},
		{Mode: modeHooksmith, Workers: 64, RoundFigures: []float64{0.9}, Ratio: &Ratios{PerSec: 0.9}},
	}}
	paired := &report{Settings: Settings{Payload: 200}, Paired: &PairedResult{Blocks: []PairedBlock{{Workers: 64,
		Comparisons: []Comparison{
			{Mode: modeHooksmith, Baseline: modeCeiling, Median: 0.8, Low: 0.75, High: 0.84},
			{Mode: modeHooksmith, Baseline: modeNaive, Median: 1.4, Low: 1.3, High: 1.5},
		}}}}}
	verdicts := func(reps map[string]*report) map[string]string {
		got := map[string]string{}
		throughputTargets(reps, func(name, _, v string) { got[name] = v })
		return got
	}
	ceilingRow := "hooksmith ≥ 85% of ceiling deliveries/s (200 B, 64 workers)"
	naiveRow := "hooksmith ≥ naive at 64 workers"
	got := verdicts(map[string]*report{"throughput": rounds})
	require.Equal(t, "yes", got[ceilingRow], "the rounds' 0.9x")
	require.Equal(t, "yes", got[naiveRow], "the rounds' 1.8x")
	got = verdicts(map[string]*report{"throughput": rounds, "paired": paired})
	require.Equal(t, "no", got[ceilingRow], "the paired interval, 0.75-0.84")
	require.Equal(t, "yes", got[naiveRow])
	require.NotContains(t, got, "hooksmith-full ≥ naive at 64 workers", "a mode that ran in neither has no row")
}

// The receiver's CPU gets a column when the report measured it, and reports from before
// it was measured render as they did.
func TestPairedTableShowsTheReceiversCPUWhenMeasured(t *testing.T) {
	blk := PairedBlock{Workers: 64, Modes: []PairedMode{{Mode: modeCeiling, MedianPerSec: 30000, CPUMicrosPer: 27.5}}}
	var old strings.Builder
	writePaired(&old, &PairedResult{Blocks: []PairedBlock{blk}}, true)
	require.NotContains(t, old.String(), "receiver")
	require.Contains(t, old.String(), "| 64 | ceiling | 30000 | 27.5 |  |  |")

	blk.Modes[0].ReceiverCPUMicrosPer = 23.25
	var now strings.Builder
	writePaired(&now, &PairedResult{Blocks: []PairedBlock{blk}}, true)
	require.Contains(t, now.String(), "| CPU µs/dlv | receiver CPU µs/dlv | vs ceiling")
	require.Contains(t, now.String(), "| 64 | ceiling | 30000 | 27.5 | 23.2 |  |  |")
}

// A paired run with ceiling-headers compares the hooksmith modes with it too: a column of
// the table, and a figure beside the 64-worker target that does not change its verdict.
func TestPairedComparisonWithCeilingHeaders(t *testing.T) {
	blk := PairedBlock{Workers: 64,
		Modes: []PairedMode{{Mode: modeCeiling, MedianPerSec: 30000}, {Mode: modeHooksmith, MedianPerSec: 25000}},
		Comparisons: []Comparison{
			{Mode: modeHooksmith, Baseline: modeCeiling, Median: 0.83, Low: 0.8, High: 0.84},
			{Mode: modeHooksmith, Baseline: modeCeilingHeader, Median: 0.91, Low: 0.87, High: 0.94},
		}}
	var table strings.Builder
	writePaired(&table, &PairedResult{Blocks: []PairedBlock{blk}}, true)
	require.Contains(t, table.String(), "| vs ceiling (95% CI) | vs ceiling-headers (95% CI) | vs naive (95% CI) |")
	require.Contains(t, table.String(), "| 64 | hooksmith | 25000 | 0.0 | 0.83x (0.80–0.84) | 0.91x (0.87–0.94) |  |")

	figs, verdicts := map[string]string{}, map[string]string{}
	throughputTargets(map[string]*report{"paired": {Settings: Settings{Payload: 200}, Paired: &PairedResult{Blocks: []PairedBlock{blk}}}},
		func(name, fig, v string) { figs[name], verdicts[name] = fig, v })
	row := "hooksmith ≥ 85% of ceiling deliveries/s (200 B, 64 workers)"
	require.Contains(t, figs[row], "against ceiling-headers, the same request bytes: median 0.91x, 0.87–0.94")
	require.Equal(t, "no", verdicts[row], "decided by the ceiling's interval alone")
}

// A head-of-line run in paired slices is decided by its interval, as the throughput
// targets are; a run in rounds by its median round.
func TestHOLTargetFollowsThePairedInterval(t *testing.T) {
	hol := func(r *HOLResult) string {
		var b strings.Builder
		targets(&b, map[string]*report{"hol": {HOL: r}}, nil)
		for line := range strings.Lines(b.String()) {
			if strings.HasPrefix(line, "| HOL:") {
				return line
			}
		}
		t.Fatal("no HOL row")
		return ""
	}
	rounds := &HOLResult{AlonePerSec: 1000, MixedPerSec: 850, Ratio: 0.85}
	require.Contains(t, hol(rounds), "= 0.85x | yes |")
	rounds.Paired = &HOLPaired{Comparisons: []Comparison{{Mode: modeHOLMixed, Baseline: modeHOLAlone,
		Ratios: make([]float64, 40), Median: 0.85, Low: 0.78, High: 0.9}}}
	require.Contains(t, hol(rounds), "median of 40 paired ratios 0.85x, 95% CI 0.78–0.90 | undecided")
	rounds.Paired.Comparisons[0].Low = 0.81
	require.Contains(t, hol(rounds), "| yes |")
	rounds.Paired.Comparisons[0].Low, rounds.Paired.Comparisons[0].High = 0.6, 0.79
	require.Contains(t, hol(rounds), "| no |")
}

// Loads that count what they have outstanding drain when none has any, without asking
// the receiver (whose count never reaches what they issued: some requests hang), and
// not while any has some.
func TestDrainWaitsForOutstandingCounts(t *testing.T) {
	var left, polls atomic.Int32
	left.Store(3)
	l := &load{outstanding: func() int { polls.Add(1); return int(left.Load()) }}
	l.pause()
	l.spawn(func() { l.pass() })
	defer func() { l.resume(); l.wg.Wait() }()
	waitFor(t, l.held)
	l.next.Store(10) // issued, never to arrive
	b := &bench{}    // no receiver: drain must not need one
	done := make(chan error, 1)
	go func() { done <- b.drain([]*load{l}) }()
	waitFor(t, func() bool { return polls.Load() >= 3 }) // it looked three times, with 3 outstanding
	select {
	case err := <-done:
		t.Fatalf("drained with 3 outstanding (err %v)", err)
	default:
	}
	left.Store(0)
	require.NoError(t, <-done)
}
