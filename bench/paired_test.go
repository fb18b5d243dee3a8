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
	require.Equal(t, "yes", verdict(Comparison{Low: 0.85, High: 0.9}, 0.85))
	require.Equal(t, "no", verdict(Comparison{Low: 0.7, High: 0.849}, 0.85))
	require.Equal(t, "within the interval", verdict(Comparison{Low: 0.84, High: 0.86}, 0.85))
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

// Each floor is decided by the figure that measures it: a paired interval at or above the
// floor holds it, one wholly below breaks it, one that spans it leaves it undecided.
func TestFloorsFollowTheirFigures(t *testing.T) {
	blk := PairedBlock{Workers: 64, Modes: []PairedMode{{Mode: modeHooksmith, MedianPerSec: 25000}}, Comparisons: []Comparison{
		{Mode: modeHooksmith, Baseline: modeCeiling, Median: 0.82, Low: 0.78, High: 0.85},
		{Mode: modeHooksmith, Baseline: modeNaive, Median: 1.4, Low: 1.3, High: 1.5},
	}}
	hol := &HOLResult{Paired: &HOLPaired{Comparisons: []Comparison{{Mode: modeHOLMixed, Baseline: modeHOLAlone, Median: 0.7, Low: 0.6, High: 0.79}}}}
	reps := map[string]*report{
		"paired":  {Paired: &PairedResult{Blocks: []PairedBlock{blk}}},
		"backlog": {Backlog: &BacklogResult{BeyondPayload: 505, WorstBeyondPayload: 610, WholeDrainToSteady: 0.8}},
		"hol":     {HOL: hol},
	}
	got := map[string]string{}
	for _, f := range floors(reps) {
		got[f[0]] = f[2]
	}
	require.Equal(t, "within the interval", got["hooksmith ≥ 0.80x raw net/http, 64 workers"])
	require.Equal(t, "yes", got["hooksmith ≥ the naive loop, 64 workers"])
	require.Equal(t, "no", got["a backlog of a million: ≤ 600 B of heap each beyond its payload"], "the worst round decides")
	require.Equal(t, "yes", got["the backlog drained at ≥ 0.75x the Sender's steady rate"])
	require.Equal(t, "no", got["1,000 endpoints, 10% hanging: healthy ones ≥ 0.80x of alone"])
	var table strings.Builder
	writePaired(&table, &PairedResult{Blocks: []PairedBlock{blk}}, true)
	require.Contains(t, table.String(), "| 64 | hooksmith |")
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
