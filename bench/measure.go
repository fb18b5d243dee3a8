package main

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// snapshot is the measured process's counters at one instant.
type snapshot struct {
	at        time.Time
	delivered int64 // answered by the receiver
	seq       int64 // next sequence number to be issued
	mallocs   uint64
	bytes     uint64
	cpu       time.Duration // user + system CPU of this process
	gcs       uint32
}

func take(delivered, seq int64) snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return snapshot{at: time.Now(), delivered: delivered, seq: seq, mallocs: ms.Mallocs,
		bytes: ms.TotalAlloc, cpu: processCPU(), gcs: ms.NumGC}
}

// gcCPU returns the CPU seconds the garbage collector has used in this process so far.
func gcCPU() float64 {
	sample := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64 {
		return 0
	}
	return sample[0].Value.Float64()
}

// forcedGCMillis returns the CPU in milliseconds, by the collector's own account
// (gcCPU), of one collection (runtime.GC) of what is live: a first, untimed collection
// frees the garbage from before, so the one timed has only the live heap to mark.
func forcedGCMillis() float64 {
	runtime.GC()
	before := gcCPU()
	runtime.GC()
	return 1000 * (gcCPU() - before)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS returns memory to the OS and resets VmHWM (Linux: clear_refs 5), so the
// next peakRSS reading covers only what follows. It reports whether the reset worked;
// when it did not, peakRSS is the process's lifetime peak.
func resetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS returns VmHWM in bytes, or 0 when /proc is not available.
func peakRSS() int64 { return procStatus("VmHWM:") }

func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// percentiles sorts xs in place and returns the requested quantiles (0 to 1).
func percentiles(xs []int64, qs ...float64) []time.Duration {
	out := make([]time.Duration, len(qs))
	if len(xs) == 0 {
		return out
	}
	slices.Sort(xs)
	for i, q := range qs {
		k := int(q * float64(len(xs)-1))
		out[i] = time.Duration(xs[k])
	}
	return out
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
