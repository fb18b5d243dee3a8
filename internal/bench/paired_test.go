package main

import (
	"testing"

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
