package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// printText writes a report for people.
func printText(w io.Writer, rep report) {
	m := rep.Machine
	fmt.Fprintf(w, "%s | %d CPUs (GOMAXPROCS %d), %s, load %s\n", m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.LoadAvg)
	st := rep.Settings
	fmt.Fprintf(w, "duration %s (after %s warm-up), payload %d B (envelope %d B), %d endpoint(s), receiver latency %s, store %s\n\n",
		st.Duration, st.Warmup, st.Payload, st.EnvelopeBytes, st.Endpoints, st.ReceiverLatency, st.Store)
	if len(rep.Throughput) > 0 {
		writeThroughput(w, rep.Throughput, false)
	}
	if r := rep.Paired; r != nil {
		writePaired(w, r, false)
	}
	if r := rep.Backlog; r != nil {
		writeBacklog(w, r, false)
	}
	if r := rep.HOL; r != nil {
		writeHOL(w, r, false)
	}
	if r := rep.SendLatency; r != nil {
		writeSendLatency(w, r, false)
	}
	if r := rep.Stores; r != nil {
		writeStores(w, r, false)
	}
}

// Targets of the throughput and stores scenarios, from the issue.
const (
	targetCeilingRatio = 0.85  // deliveries/s against the ceiling, 64 workers; the drain too
	targetFileSends    = 20000 // durable Sends/s with 64 concurrent callers
	targetPGDelivered  = 5000  // deliveries/s end to end
	targetHOLRatio     = 0.80  // healthy endpoints' deliveries/s beside hanging ones, against alone
)

func writeStores(w io.Writer, r *StoresResult, md bool) {
	title(w, md, "Stores")
	fmt.Fprintf(w, "%sEach store fresh and empty for each phase, in one process and run, against the same loopback receiver. Figures in parentheses\n", bullet(md))
	fmt.Fprintf(w, "%sare ratios to the memory store of the same run: compare those, not absolute figures, across runs.\n", indent(md))
	fmt.Fprintf(w, "%saccepted Sends/s: %d callers Send as fast as they can to one endpoint that is held (MaxInFlight 1, its one attempt hanging on\n", bullet(md), r.Callers)
	fmt.Fprintf(w, "%sthe receiver), so nothing is delivered and each Send returns once its delivery is stored (file: committed and fsynced; postgres:\n", indent(md))
	fmt.Fprintf(w, "%scommitted); the dispatcher still runs and skips the held endpoint. Stores unbounded; the window ends after the duration or\n", indent(md))
	fmt.Fprintf(w, "%s%d Sends. Send latency and the measured process's CPU per Send alongside.\n", indent(md), r.MaxSends)
	fmt.Fprintf(w, "%send to end: %d callers Send, a Sender with %d workers and WithEndpointConcurrency(%d) delivers to the receiver's 204; at most %d\n", bullet(md), r.Callers, r.Workers, r.Workers, r.Window)
	fmt.Fprintf(w, "%sdeliveries are unfinished (a caller takes a slot before Send; the OnAttempt hook frees it once the result is recorded), the same\n", indent(md))
	fmt.Fprintf(w, "%sbound for every store (pgstore has no capacity option). Deliveries/s are counted by the receiver; latency is Send to arrival.\n", indent(md))
	fmt.Fprintf(w, "%sfile store: fsync on (no WithNoSync), default group commit, in %s (%s)\n", bullet(md), r.StoreDir, r.StoreDirFS)
	if r.PostgresSkipped != "" {
		fmt.Fprintf(w, "%s%s\n", bullet(md), r.PostgresSkipped)
	} else {
		fmt.Fprintf(w, "%spostgres store: pgxpool MaxConns %d, default batch size, server on this machine (competing for the same CPUs): %s\n", bullet(md), r.PGConns, r.PGSettings)
	}
	fmt.Fprintln(w)
	head := []string{"store", "accepted Sends/s", "Send p50 µs", "Send p99 µs", "CPU µs/Send", "deliveries/s end to end", "p50 µs", "p99 µs", "CPU µs/dlv", "errors"}
	var rows [][]string
	for _, s := range r.Stores {
		d := s.Deliver
		rows = append(rows, []string{s.Store,
			fmt.Sprintf("%.0f (%s)", s.SendsPerSec, x(s.SendRatio)),
			fmt.Sprintf("%.0f", s.SendP50), fmt.Sprintf("%.0f", s.SendP99), fmt.Sprintf("%.1f", s.SendCPU),
			fmt.Sprintf("%.0f (%s)", d.PerSec, x(s.DeliverRatio)),
			fmt.Sprintf("%.0f", d.P50Micros), fmt.Sprintf("%.0f", d.P99Micros), fmt.Sprintf("%.1f", d.CPUMicrosPer),
			fmt.Sprintf("%d+%d", s.SendErrors, d.Errors)})
	}
	table(w, md, head, rows)
	fmt.Fprintln(w)
	var srows [][]string
	for _, s := range r.Stores {
		if st := s.Stats; st != nil {
			srows = append(srows, []string{s.Store, strconv.FormatInt(st.Claims, 10),
				fmt.Sprintf("%.1f", st.RowsPerClaim), fmt.Sprintf("%.0f", st.ClaimMicros),
				fmt.Sprintf("%.0f", st.NextDueMicros), fmt.Sprintf("%.0f%%", 100*st.DispatcherBusy),
				fmt.Sprintf("%.0f", st.EnqueueMicros), fmt.Sprintf("%.0f", st.RecordMicros)})
		}
	}
	if len(srows) > 0 {
		fmt.Fprintf(w, "%sstore calls in the end-to-end phase (-store-stats, warm-up included; the wrapper adds a little to every store):\n\n", bullet(md))
		table(w, md, []string{"store", "claims", "deliveries/claim", "claim µs", "NextDue µs", "dispatcher in store", "Enqueue µs", "Record µs"}, srows)
		fmt.Fprintln(w)
	}
	for _, s := range r.Stores {
		switch s.Store {
		case storeFile:
			fmt.Fprintf(w, "%starget: file store ≥ %d durable Sends/s with %d callers: %.0f, %s\n", bullet(md), targetFileSends, r.Callers, s.SendsPerSec, met(s.SendsPerSec >= targetFileSends && r.Callers == 64))
		case storePostgres:
			fmt.Fprintf(w, "%starget: postgres store ≥ %d deliveries/s end to end: %.0f, %s\n", bullet(md), targetPGDelivered, s.Deliver.PerSec, met(s.Deliver.PerSec >= targetPGDelivered))
		}
	}
	fmt.Fprintln(w)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func x(r float64) string { return strconv.FormatFloat(r, 'f', 2, 64) + "x" }

func withRatio(v float64, prec int, r *Ratios, pick func(*Ratios) float64) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if r != nil {
		s += " (" + x(pick(r)) + ")"
	}
	return s
}

func writeThroughput(w io.Writer, rs []ModeResult, md bool) {
	head := []string{"workers", "mode", "deliveries/s", "rounds", "p50 µs", "p99 µs", "allocs/dlv", "B/dlv", "CPU µs/dlv", "peak RSS MiB", "errors"}
	var rows [][]string
	for _, r := range rs {
		rows = append(rows, []string{
			strconv.Itoa(r.Workers), r.Mode,
			withRatio(r.PerSec, 0, r.Ratio, func(r *Ratios) float64 { return r.PerSec }),
			roundFigures(r),
			withRatio(r.P50Micros, 0, r.Ratio, func(r *Ratios) float64 { return r.P50 }),
			withRatio(r.P99Micros, 0, r.Ratio, func(r *Ratios) float64 { return r.P99 }),
			withRatio(r.AllocsPer, 1, r.Ratio, func(r *Ratios) float64 { return r.Allocs }),
			withRatio(r.BytesPer, 0, r.Ratio, func(r *Ratios) float64 { return r.Bytes }),
			withRatio(r.CPUMicrosPer, 1, r.Ratio, func(r *Ratios) float64 { return r.CPU }),
			withRatio(r.PeakRSSMiB, 1, r.Ratio, func(r *Ratios) float64 { return r.RSS }),
			strconv.FormatInt(r.Errors, 10),
		})
	}
	table(w, md, head, rows)
	fmt.Fprintln(w)
	for _, m := range allModes {
		fmt.Fprintf(w, "%s%s: %s\n", bullet(md), m, modeLabels[m])
	}
	fmt.Fprintln(w)
	if lines := againstHeaders(rs); len(lines) > 0 {
		fmt.Fprintf(w, "Against %s, the same request bytes without the Sender (per round, then the median):\n\n", modeCeilingHeader)
		for _, l := range lines {
			fmt.Fprintf(w, "%s%s\n", bullet(md), l)
		}
		fmt.Fprintln(w)
	}
}

// writePaired writes the paired scenario's table: per worker count and mode, the median
// slice's deliveries/s, CPU per delivery, and the cycle-by-cycle ratios to the ceiling,
// to ceiling-headers (when it ran) and to naive with their 95% intervals.
func writePaired(w io.Writer, r *PairedResult, md bool) {
	// Reports from before the receiver's CPU was measured have no such column.
	withReceiver := false
	for _, blk := range r.Blocks {
		for _, m := range blk.Modes {
			withReceiver = withReceiver || m.ReceiverCPUMicrosPer > 0
		}
	}
	head := []string{"workers", "mode", "deliveries/s (median slice)", "CPU µs/dlv"}
	if withReceiver {
		head = append(head, "receiver CPU µs/dlv")
	}
	bases := []string{modeCeiling}
	if slices.ContainsFunc(r.Blocks, func(blk PairedBlock) bool {
		return slices.ContainsFunc(blk.Comparisons, func(c Comparison) bool { return c.Baseline == modeCeilingHeader })
	}) {
		bases = append(bases, modeCeilingHeader)
	}
	bases = append(bases, modeNaive)
	for _, base := range bases {
		head = append(head, "vs "+base+" (95% CI)")
	}
	var rows [][]string
	for _, blk := range r.Blocks {
		for _, m := range blk.Modes {
			row := []string{strconv.Itoa(blk.Workers), m.Mode, strconv.FormatFloat(m.MedianPerSec, 'f', 0, 64),
				strconv.FormatFloat(m.CPUMicrosPer, 'f', 1, 64)}
			if withReceiver {
				row = append(row, strconv.FormatFloat(m.ReceiverCPUMicrosPer, 'f', 1, 64))
			}
			for _, base := range bases {
				cell := ""
				if c, ok := blk.comparison(m.Mode, base); ok {
					cell = fmt.Sprintf("%s (%.2f–%.2f)", x(c.Median), c.Low, c.High)
				}
				row = append(row, cell)
			}
			rows = append(rows, row)
		}
	}
	table(w, md, head, rows)
	fmt.Fprintln(w)
}

// againstHeaders compares each hooksmith mode with ceiling-headers at the same worker
// count, round by round (see perRound).
func againstHeaders(rs []ModeResult) []string {
	ch := map[int]ModeResult{}
	for _, r := range rs {
		if r.Mode == modeCeilingHeader {
			ch[r.Workers] = r
		}
	}
	var out []string
	for _, r := range rs {
		c, ok := ch[r.Workers]
		if !ok || (r.Mode != modeHooksmith && r.Mode != modeHooksmithFull) {
			continue
		}
		if per := perRound(r, c); len(per) > 0 {
			out = append(out, fmt.Sprintf("%s at %d workers: %s, median %s", r.Mode, r.Workers, joinX(per), x(medianValue(per))))
		}
	}
	return out
}

// perRound returns a over b round by round. Both modes' round figures are ratios to
// their round's ceiling, so each quotient is a over b within one round.
func perRound(a, b ModeResult) []float64 {
	var per []float64
	for i := range min(len(a.RoundFigures), len(b.RoundFigures)) {
		per = append(per, ratio(a.RoundFigures[i], b.RoundFigures[i]))
	}
	return per
}

// roundFigures lists each round's deliveries/s ratio (the ceiling's deliveries/s).
func roundFigures(r ModeResult) string {
	var fs []string
	for _, f := range r.RoundFigures {
		if r.Ratio != nil {
			fs = append(fs, strconv.FormatFloat(f, 'f', 2, 64))
		} else {
			fs = append(fs, strconv.FormatFloat(f, 'f', 0, 64))
		}
	}
	return strings.Join(fs, " ")
}

func indent(md bool) string {
	if md {
		return "  "
	}
	return "    "
}

func bullet(md bool) string {
	if md {
		return "- "
	}
	return "  "
}

func writeBacklog(w io.Writer, r *BacklogResult, md bool) {
	title(w, md, "Backlog")
	fmt.Fprintf(w, "%s%d pending deliveries of a %d B payload (envelope %d B, capacity %d B), %d workers. Send makes no delivery for a disabled\n", bullet(md), r.Pending, r.PayloadBytes, r.EnvelopeBytes, r.EnvelopeCap, r.Workers)
	fmt.Fprintf(w, "%sendpoint, so the receiver is \"down\" by hanging: MaxInFlight 1 and a URL that holds the one attempt; the drain switches the\n", indent(md))
	fmt.Fprintf(w, "%sendpoint (UpdateEndpoint) to the answering URL and releases the hang. Heap is HeapAlloc after runtime.GC, minus the same before\n", indent(md))
	fmt.Fprintf(w, "%sheap per pending delivery: %.0f B, of which beyond the envelope: %.0f B, beyond the payload: %.0f B (target ≤ 400 beyond the payload)\n", bullet(md), r.HeapPerDelivery, r.BeyondEnvelope, r.BeyondPayload)
	if r.SentBeyondPayload != 0 {
		fmt.Fprintf(w, "%s(measured after a lookup, which takes in the deliveries still in the store's intake; as soon as the last Send returned, before it: %.0f B beyond the payload)\n", indent(md), r.SentBeyondPayload)
	}
	fmt.Fprintf(w, "%sSend into the backlog: %.0f/s; peak RSS %.0f MiB\n", bullet(md), r.EnqueuePerSec, r.PeakRSSMiB)
	if r.GCCycleHeldMillis > 0 {
		fmt.Fprintf(w, "%sone collection (runtime.GC) with the backlog held: %.1f ms of collector CPU; before the backlog: %.1f ms\n", bullet(md), r.GCCycleHeldMillis, r.GCCycleBaseMillis)
	}
	fmt.Fprintf(w, "%sthe whole drain: the %d deliveries but the hung one in %.1f s = %.0f/s, %s of the ceiling\n", bullet(md), r.Pending, r.WholeDrainSeconds, r.WholeDrainPerSec, x(r.WholeDrainRatio))
	if r.WholeDrainCPU > 0 {
		fmt.Fprintf(w, "%sthe collector over the whole drain: %.1f s of the process's %.1f s of CPU (%.0f%%, mark workers on idle Ps included), %d cycles\n",
			bullet(md), r.WholeDrainGCCPU, r.WholeDrainCPU, 100*r.WholeDrainGCCPU/r.WholeDrainCPU, r.WholeDrainGCs)
	}
	fmt.Fprintf(w, "%sthe drain's start (a window after warm-up): %.0f/s vs ceiling %.0f/s (mean of %.0f before the backlog and %.0f after, the store released: HeapAlloc %.0f MiB) = %s (%s); CPU µs/delivery %.1f vs %.1f\n", bullet(md), r.DrainPerSec, r.CeilingPerSec, at(r.CeilingRuns, 0), at(r.CeilingRuns, 1), r.HeapReleasedMiB, x(r.DrainRatio), r.DrainLabel, r.DrainCPUMicros, r.CeilingCPUMicros)
	fmt.Fprintf(w, "%sthe ceiling with the backlog held, before the drain (HeapAlloc %.0f MiB; the Sender idle behind its hung attempt): %.0f/s, CPU µs/delivery %.1f; the drain's start = %s of that\n", bullet(md), r.HeapHeldMiB, r.HeldCeilingPerSec, r.HeldCeilingCPU, x(r.DrainRatioToHeld))
	if len(r.Rounds) > 1 {
		fmt.Fprintf(w, "%s%d rounds, each a fresh backlog; the figures above are the round with the median whole drain. Per round, the whole drain vs ceiling: %s; its start vs ceiling: %s; its start vs the ceiling with the backlog held: %s\n", bullet(md), len(r.Rounds), joinX(r.WholeRounds), joinX(r.Rounds), joinX(r.HeldRounds))
	}
	fmt.Fprintln(w)
}

func at(xs []float64, i int) float64 {
	if i < len(xs) {
		return xs[i]
	}
	return 0
}

func writeHOL(w io.Writer, r *HOLResult, md bool) {
	title(w, md, "Head-of-line blocking")
	fmt.Fprintf(w, "%s%d endpoints, every tenth hanging until the %s timeout (%d), %d workers, default options otherwise; Send from 64\n", bullet(md), r.Endpoints, r.Timeout, r.Hanging, r.Workers)
	fmt.Fprintf(w, "%sgoroutines round-robin over the endpoints (one EventTypes filter each); measured after %s of warm-up. \"Alone\" is the\n", indent(md), r.Warmup)
	fmt.Fprintf(w, "%ssame healthy endpoints without the hanging ones.\n", indent(md))
	if p := r.Paired; p != nil {
		fmt.Fprintf(w, "%sPaired: three Senders (alone, alone again as the control, mixed), each fed by its own load and run alone for a %s\n", bullet(md), p.Slice)
		fmt.Fprintf(w, "%sslice (after %s) per cycle, in rotating order, %d cycles; each paused Sender drained before the next runs.\n\n", indent(md), p.Settle, p.Cycles)
		head := []string{"mode", "healthy deliveries/s (median slice)", "CPU µs/dlv", "receiver CPU µs/dlv", "vs alone (95% CI)"}
		var rows [][]string
		for _, m := range p.Modes {
			row := []string{m.Mode, strconv.FormatFloat(m.MedianPerSec, 'f', 0, 64), strconv.FormatFloat(m.CPUMicrosPer, 'f', 1, 64),
				strconv.FormatFloat(m.ReceiverCPUMicrosPer, 'f', 1, 64), ""}
			for _, c := range p.Comparisons {
				if c.Mode == m.Mode {
					row[4] = fmt.Sprintf("%s (%.2f–%.2f)", x(c.Median), c.Low, c.High)
				}
			}
			rows = append(rows, row)
		}
		table(w, md, head, rows)
		fmt.Fprintln(w)
		fmt.Fprintf(w, "%shealthy endpoints alone: %.0f/s; with the hanging ones: %.0f/s; median paired ratio %s (target ≥ 0.80x: %s); hanging requests started: %.1f/s; send errors %d\n\n",
			bullet(md), r.AlonePerSec, r.MixedPerSec, x(r.Ratio), ciVerdict(p.Comparisons[0], targetHOLRatio), r.HungPerSec, r.MixedSendError)
		return
	}
	if len(r.Rounds) > 1 {
		fmt.Fprintf(w, "%s%d rounds, each alone then mixed; ratio per round:", bullet(md), len(r.Rounds))
		for _, v := range r.Rounds {
			fmt.Fprintf(w, " %.2f", v)
		}
		fmt.Fprintf(w, "; the median round:\n")
	}
	fmt.Fprintf(w, "%shealthy endpoints alone: %.0f/s; with the hanging ones: %.0f/s = %s (target ≥ 0.80x); hanging requests started: %.1f/s; send errors %d\n\n", bullet(md), r.AlonePerSec, r.MixedPerSec, x(r.Ratio), r.HungPerSec, r.MixedSendError)
}

func writeSendLatency(w io.Writer, r *SendLatencyResult, md bool) {
	title(w, md, "Send latency while delivering")
	fmt.Fprintf(w, "%s%d callers, %d workers, queue capacity %d; full speed calibrated at %.0f deliveries/s (%s)\n",
		bullet(md), r.Callers, r.Workers, r.QueueCapacity, r.FullSpeed, r.CalibrationRun)
	fmt.Fprintf(w, "%sEach caller alternates: its event's data built just before Send (a fresh copy of the payload, as a real caller marshals its\n", bullet(md))
	fmt.Fprintf(w, "%sown), then prebuilt data, so that Send makes the caller's first allocation since its ticker woke it (\"first alloc\"). That\n", indent(md))
	fmt.Fprintf(w, "%sallocation pays a cost whichever code makes it, most likely the garbage collector's assist, which is charged per goroutine.\n", indent(md))
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%soffered %.1fx full speed (%.0f sends/s), delivered %.0f/s meanwhile: Send p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs, max %.0f µs over %d calls; as the first alloc p50 %.1f µs, p99 %.1f µs, p99.9 %.1f µs over %d calls; control (json.Valid + 512 B alloc, same callers, after each Send) p50 %.1f µs, p99 %.1f µs; the control repeated %d times, to Send's median length: p50 %.1f µs, p99 %.1f µs; %d GCs; errors %d\n",
			bullet(md), p.Load, p.OfferedPerSec, p.DeliveredPer, p.P50Micros, p.P99Micros, p.P999Micros, p.MaxMicros, p.Sends,
			p.FirstP50, p.FirstP99, p.FirstP999, p.FirstSends,
			p.ControlP50Micros, p.ControlP99Micros, p.ControlReps, p.SizedControlP50, p.SizedControlP99, p.GCs, p.Errors)
	}
	fmt.Fprintln(w)
}

func title(w io.Writer, md bool, s string) {
	if md {
		fmt.Fprintf(w, "### %s\n\n", s)
		return
	}
	fmt.Fprintln(w, s)
}

func table(w io.Writer, md bool, head []string, rows [][]string) {
	if md {
		fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
		for _, r := range rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
		}
		return
	}
	width := make([]int, len(head))
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range append([][]string{head}, rows...) {
		for i, c := range r {
			fmt.Fprintf(w, "%-*s  ", width[i], c)
		}
		fmt.Fprintln(w)
	}
}

func joinX(xs []float64) string {
	var out []string
	for _, v := range xs {
		out = append(out, strconv.FormatFloat(v, 'f', 2, 64))
	}
	return strings.Join(out, " ")
}

// goBench is one line of go test -bench output.
type goBench struct {
	name    string
	metrics map[string]float64 // by unit: ns/op, B/op, allocs/op, ...
	line    string
}

func parseGoBench(b []byte) []goBench {
	var out []goBench
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		gb := goBench{name: f[0], metrics: map[string]float64{}, line: sc.Text()}
		// Drop the -GOMAXPROCS suffix.
		if i := strings.LastIndexByte(gb.name, '-'); i > 0 {
			if _, err := strconv.Atoi(gb.name[i+1:]); err == nil {
				gb.name = gb.name[:i]
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				gb.metrics[f[i+1]] = v
			}
		}
		out = append(out, gb)
	}
	return out
}

// findBench returns the run of name with the median ns/op, when -count repeated it.
func findBench(bs []goBench, name string) (goBench, bool) {
	var runs []goBench
	for _, b := range bs {
		if b.name == name {
			runs = append(runs, b)
		}
	}
	if len(runs) == 0 {
		return goBench{}, false
	}
	slices.SortFunc(runs, func(a, b goBench) int { return cmp.Compare(a.metrics["ns/op"], b.metrics["ns/op"]) })
	return runs[(len(runs)-1)/2], true
}

func readReport(dir, name string) (*report, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &r, nil
}

// render writes BENCHMARKS.md from dir's throughput.json, paired.json, backlog.json, hol.json,
// send-latency.json, stores.json and gobench.txt; missing files are reported as not run.
func render(dir, out string) error {
	reps := map[string]*report{}
	for _, n := range []string{"throughput", "paired", "backlog", "hol", "send-latency", "stores"} {
		r, err := readReport(dir, n+".json")
		if err != nil {
			return err
		}
		reps[n] = r
	}
	gobench, _ := os.ReadFile(filepath.Join(dir, "gobench.txt"))
	benches := parseGoBench(gobench)

	var w bytes.Buffer
	fmt.Fprintf(&w, "# Benchmarks\n\n")
	fmt.Fprintf(&w, "Generated by `scripts/bench.sh` (about 25 minutes); do not edit by hand. Every ratio compares\n")
	fmt.Fprintf(&w, "figures from the same process and run, because absolute numbers on a shared machine are noisy.\n")
	fmt.Fprintf(&w, "The receiver is the bench program re-executed as a child process on 127.0.0.1 answering 204,\n")
	fmt.Fprintf(&w, "so its CPU, allocations and GC are not in the measured process's figures (it still competes for the CPUs).\n\n")
	var any *report
	for _, n := range []string{"throughput", "paired", "backlog", "hol", "send-latency", "stores"} {
		if reps[n] != nil {
			any = reps[n]
			break
		}
	}
	if any != nil {
		m := any.Machine
		fmt.Fprintf(&w, "Machine: %s, nproc %d (GOMAXPROCS %d), %.0f GiB, %s; load average at start %s; %s.\n\n",
			m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.MemTotalGB, m.GoVersion, m.LoadAvg, m.Date)
	}

	fmt.Fprintf(&w, "## Targets\n\n")
	targets(&w, reps, benches)

	if r := reps["throughput"]; r != nil {
		st := r.Settings
		fmt.Fprintf(&w, "## Throughput\n\n`%s`\n\n", r.Command)
		fmt.Fprintf(&w, "%s measured after %s of warm-up per mode; payload %d B of data (envelope %d B); %d endpoint(s); receiver latency %s; store %s; hooksmith queue capacity %s (Send blocks when full).\n",
			st.Duration, st.Warmup, st.Payload, st.EnvelopeBytes, st.Endpoints, st.ReceiverLatency, st.Store, st.Queue)
		fmt.Fprintf(&w, "%d round(s), modes interleaved; each row is the mode's median round, and \"rounds\" lists every round's\n", st.Rounds)
		fmt.Fprintf(&w, "deliveries/s ratio to that round's ceiling (the ceiling's deliveries/s), to show the noise. Rows of one worker count\n")
		fmt.Fprintf(&w, "may come from different rounds: compare ratios, not absolute figures, across rows.\n")
		fmt.Fprintf(&w, "Figures in parentheses are ratios to the ceiling at the same worker count. Latency runs from just before the\n")
		fmt.Fprintf(&w, "request (ceiling, naive) or the Send call (hooksmith) to the receiver's arrival stamp, so hooksmith's includes\n")
		fmt.Fprintf(&w, "time queued behind up to the queue capacity. allocs, bytes and CPU are the measured process's, per delivery;\n")
		fmt.Fprintf(&w, "hooksmith's include the feeding goroutines' Send calls. Peak RSS is VmHWM, reset before each mode.\n\n")
		writeThroughput(&w, r.Throughput, true)
	}
	if r := reps["paired"]; r != nil && r.Paired != nil {
		p := r.Paired
		fmt.Fprintf(&w, "## Paired throughput\n\n`%s`\n\n", r.Command)
		fmt.Fprintf(&w, "The rounds above are a second per mode, one mode after another, and a round's ratio swings with what else\n")
		fmt.Fprintf(&w, "the machine is doing. Here every mode's load is started once and kept, paused, beside the others; %d cycles\n", p.Cycles)
		fmt.Fprintf(&w, "each run every mode alone for a %s slice (measured after %s of running), pausing it and waiting until all\n", p.Slice, p.Settle)
		fmt.Fprintf(&w, "it sent has arrived before the next starts, in an order that rotates from cycle to cycle. A cycle gives one\n")
		fmt.Fprintf(&w, "ratio per pair of modes measured about a second apart; the table has their median over the cycles and a\n")
		fmt.Fprintf(&w, "distribution-free 95%% confidence interval for it (the sign test's). %s is a second, separate ceiling load:\n", modeCeilingAgain)
		fmt.Fprintf(&w, "its interval is what the method resolves in this run. These intervals decide the throughput targets above.\n")
		fmt.Fprintf(&w, "Payload %d B of data, %d endpoint(s), store %s, hooksmith queue capacity %s.\n\n",
			r.Settings.Payload, r.Settings.Endpoints, r.Settings.Store, r.Settings.Queue)
		writePaired(&w, p, true)
	}
	for _, n := range []string{"backlog", "hol", "send-latency", "stores"} {
		r := reps[n]
		if r == nil {
			fmt.Fprintf(&w, "### %s\n\nnot run\n\n", n)
			continue
		}
		switch n {
		case "backlog":
			writeBacklog(&w, r.Backlog, true)
		case "hol":
			writeHOL(&w, r.HOL, true)
		case "send-latency":
			writeSendLatency(&w, r.SendLatency, true)
		case "stores":
			writeStores(&w, r.Stores, true)
		}
		fmt.Fprintf(&w, "`%s`\n\n", r.Command)
	}
	fmt.Fprintf(&w, "## Micro-benchmarks\n\n")
	if len(benches) == 0 {
		fmt.Fprintf(&w, "not run\n\n")
	} else {
		fmt.Fprintf(&w, "`go test -run '^$' -bench '^Benchmark(Sign|SignatureOnly|Envelope|SendEnqueue|Scheduler|Deliver|Valid)$' -benchmem -benchtime 0.3s -count 3 . ./internal/jsonvalid`\n")
		fmt.Fprintf(&w, "(BenchmarkSign is in signer_test.go, BenchmarkSignatureOnly in signer_internal_test.go, BenchmarkValid in internal/jsonvalid, the rest in\n")
		fmt.Fprintf(&w, "bench_test.go). BenchmarkSignatureOnly is Sign's signature computation without its three header writes. BenchmarkValid is Send's\n")
		fmt.Fprintf(&w, "check of raw JSON data against encoding/json.Valid on the same bytes. BenchmarkEnvelope's send-* is Send to a disabled endpoint:\n")
		fmt.Fprintf(&w, "validation, envelope and fan-out, nothing stored. BenchmarkSendEnqueue is Send into a MemoryStore that is never claimed\n")
		fmt.Fprintf(&w, "(plain-store: a plain one, the default path, its endpoint rate limited so the dispatcher claims around it; allocs and\n")
		fmt.Fprintf(&w, "bytes include the dispatcher's), from 64 goroutines (ns/op is wall time per Send over 2 CPUs). BenchmarkScheduler is MemoryStore Claim (64, at most 32 per\n")
		fmt.Fprintf(&w, "endpoint) plus Record of each, per batch, over 10,000 pending deliveries. BenchmarkDeliver/sender is the Sender's own cost per\n")
		fmt.Fprintf(&w, "delivery without a network: 64 callers Send, 64 workers deliver through a transport that answers 204 at once (ns/op is wall time\n")
		fmt.Fprintf(&w, "per delivery over 2 CPUs, Send included); BenchmarkDeliver/request, its baseline, is 64 goroutines handing the same POST to the same transport.\n\n```\n")
		for _, b := range benches {
			fmt.Fprintln(&w, b.line)
		}
		fmt.Fprintf(&w, "```\n")
		sender, ok1 := findBench(benches, "BenchmarkDeliver/sender")
		req, ok2 := findBench(benches, "BenchmarkDeliver/request")
		if ok1 && ok2 {
			fmt.Fprintf(&w, "\nBenchmarkDeliver: the Sender's %.0f ns per delivery against the bare request's %.0f ns (medians of the -count runs) = %s as long.\n",
				sender.metrics["ns/op"], req.metrics["ns/op"], x(ratio(sender.metrics["ns/op"], req.metrics["ns/op"])))
		}
	}
	return os.WriteFile(out, w.Bytes(), 0o644)
}

// throughputTargets writes the rows of the throughput targets: against the ceiling at 64
// workers (200 B payload) and against naive at every worker count. With a paired report,
// its interval decides each (see ciVerdict) and the rounds' median is shown beside it;
// without one, the rounds' median does.
func throughputTargets(reps map[string]*report, rowV func(name, fig, verdict string)) {
	r := reps["throughput"]
	blocks := map[int]PairedBlock{}
	paired200 := false
	if p := reps["paired"]; p != nil && p.Paired != nil {
		paired200 = p.Settings.Payload == 200
		for _, blk := range p.Paired.Blocks {
			blocks[blk.Workers] = blk
		}
	}
	type key struct {
		workers int
		mode    string
	}
	rounds := map[key]ModeResult{}
	var workers []int
	if r != nil {
		workers = slices.Clone(r.Settings.Workers)
		for _, m := range r.Throughput {
			rounds[key{m.Workers, m.Mode}] = m
		}
	}
	for wk := range blocks {
		if !slices.Contains(workers, wk) {
			workers = append(workers, wk)
		}
	}
	slices.Sort(workers)
	round := func(wk int, mode string) (ModeResult, bool) {
		m, ok := rounds[key{wk, mode}]
		return m, ok
	}
	// target writes one row. ran: the rounds ran the mode; fig and met are the rounds'
	// figure and verdict, and known whether they could be worked out.
	target := func(name string, wk int, mode, base string, bar float64, usePaired, ran bool, fig string, met, known bool) {
		if blk, ok := blocks[wk]; ok && usePaired {
			if c, ok := blk.comparison(mode, base); ok {
				pf := fmt.Sprintf("paired: median %s, 95%% CI %.2f–%.2f over %d cycles", x(c.Median), c.Low, c.High, len(c.Ratios))
				if ctl, ok := blk.comparison(modeCeilingAgain, modeCeiling); ok {
					pf += fmt.Sprintf(" (control %s %s, %.2f–%.2f)", modeCeilingAgain, x(ctl.Median), ctl.Low, ctl.High)
				}
				if h, ok := blk.comparison(mode, modeCeilingHeader); ok && base == modeCeiling {
					pf += fmt.Sprintf("; against %s, the same request bytes: median %s, %.2f–%.2f", modeCeilingHeader, x(h.Median), h.Low, h.High)
				}
				if known {
					pf += "; rounds: " + fig
				}
				rowV(name, pf, ciVerdict(c, bar))
				return
			}
		}
		if ran {
			rowV(name, fig, verdict(met, known))
		}
	}
	for _, mode := range []string{modeHooksmith, modeHooksmithFull} {
		m, ok := round(64, mode)
		ok = ok && m.Ratio != nil && r.Settings.Payload == 200
		var fig string
		if ok {
			fig = fmt.Sprintf("per round %s, median %s", joinX(m.RoundFigures), x(m.Ratio.PerSec))
		}
		target(fmt.Sprintf("%s ≥ 85%% of ceiling deliveries/s (200 B, 64 workers)", mode), 64, mode, modeCeiling,
			targetCeilingRatio, paired200, ok, fig, ok && m.Ratio.PerSec >= targetCeilingRatio, ok)
	}
	for _, wk := range workers {
		n, haveNaive := round(wk, modeNaive)
		for _, mode := range []string{modeHooksmith, modeHooksmithFull} {
			m, ran := round(wk, mode)
			per := perRound(m, n) // each mode's median round is kept
			known := ran && haveNaive && len(per) > 0
			var fig string
			if known {
				fig = fmt.Sprintf("hooksmith/naive per round %s, median %s", joinX(per), x(medianValue(per)))
			}
			target(fmt.Sprintf("%s ≥ naive at %d workers", mode, wk), wk, mode, modeNaive, 1, true, ran, fig,
				known && medianValue(per) >= 1, known)
		}
	}
}

// verdict is a target's verdict from a single figure.
func verdict(met, known bool) string {
	switch {
	case !known:
		return "not measured"
	case met:
		return "yes"
	}
	return "no"
}

// ciVerdict decides a target from a paired comparison's 95% interval: met when all of it
// is at or above the target, not met when all of it is below, and otherwise undecided:
// this run cannot tell.
func ciVerdict(c Comparison, target float64) string {
	switch {
	case c.Low >= target:
		return "yes"
	case c.High < target:
		return "no"
	default:
		return "undecided (the interval spans the target)"
	}
}

// targets writes the targets with the figures that decide them.
func targets(w io.Writer, reps map[string]*report, benches []goBench) {
	fmt.Fprintf(w, "| target | figure | met |\n| --- | --- | --- |\n")
	rowV := func(name, fig, v string) { fmt.Fprintf(w, "| %s | %s | %s |\n", name, fig, v) }
	row := func(name, fig string, met bool, known bool) { rowV(name, fig, verdict(met, known)) }
	throughputTargets(reps, rowV)
	std, ok1 := findBench(benches, "BenchmarkSign/standard-1KiB")
	for _, bare := range []string{"bare-hmac-1KiB", "bare-hmac-reset-1KiB"} {
		b, ok2 := findBench(benches, "BenchmarkSign/"+bare)
		r := ratio(b.metrics["ns/op"], std.metrics["ns/op"])
		fig := fmt.Sprintf("%.0f vs %.0f ns/op (medians of -count runs) = %s", std.metrics["ns/op"], b.metrics["ns/op"], x(r))
		if sig, ok := findBench(benches, "BenchmarkSignatureOnly/1KiB"); ok && bare == "bare-hmac-reset-1KiB" {
			// Where the time goes: the signature itself, and the header values Sign writes.
			fig += fmt.Sprintf("; the signature alone (BenchmarkSignatureOnly, no header writes) %.0f ns/op = %s", sig.metrics["ns/op"], x(ratio(b.metrics["ns/op"], sig.metrics["ns/op"])))
		}
		row("signing ≥ 90% of "+bare+" speed", fig, r >= 0.9, ok1 && ok2)
	}
	if r := reps["send-latency"]; r != nil && r.SendLatency != nil {
		for _, p := range r.SendLatency.Phases {
			fig := fmt.Sprintf("%.1f µs (p50 %.1f µs)", p.P99Micros, p.P50Micros)
			if p.FirstSends > 0 {
				fig += fmt.Sprintf("; %.1f µs as the caller's first allocation after waking", p.FirstP99)
			}
			row(fmt.Sprintf("Send p99 < 20 µs, %d callers, offered %.1fx full speed", r.SendLatency.Callers, p.Load),
				fig, p.P99Micros < 20, true)
		}
	} else {
		row("Send p99 < 20 µs, 64 callers, delivering", "", false, false)
	}
	if r := reps["backlog"]; r != nil && r.Backlog != nil {
		worst := max(r.Backlog.WorstBeyondPayload, r.Backlog.BeyondPayload)
		row("backlog ≤ 400 B of heap beyond each payload", fmt.Sprintf("%.0f B beyond the %d B payload in the worst round (%.0f B beyond the envelope in the median round)", worst, r.Backlog.PayloadBytes, r.Backlog.BeyondEnvelope), worst <= 400, true)
		// "Drained at full speed" read as the throughput bar: 85% of the ceiling.
		row("backlog drained at full speed (the whole drain ≥ 85% of ceiling, as the throughput bar)", fmt.Sprintf("per round %s, median %s (%.1f s for the %d but the hung one = %.0f vs %.0f/s); the drain's start %s; %s of the ceiling with the backlog held", joinX(r.Backlog.WholeRounds), x(r.Backlog.WholeDrainRatio), r.Backlog.WholeDrainSeconds, r.Backlog.Pending, r.Backlog.WholeDrainPerSec, r.Backlog.CeilingPerSec, x(r.Backlog.DrainRatio), x(r.Backlog.DrainRatioToHeld)), r.Backlog.WholeDrainRatio >= targetCeilingRatio, true)
	} else {
		row("backlog ≤ 400 B of heap beyond each payload", "", false, false)
		row("backlog drained at full speed (the whole drain ≥ 85% of ceiling, as the throughput bar)", "", false, false)
	}
	storeRow := func(kind, name string, fig func(StoreResult) string, ok func(StoreResult) bool) {
		if r := reps["stores"]; r != nil && r.Stores != nil {
			for _, s := range r.Stores.Stores {
				if s.Store == kind {
					row(name, fig(s), ok(s), true)
					return
				}
			}
			if kind == storePostgres && r.Stores.PostgresSkipped != "" {
				row(name, r.Stores.PostgresSkipped, false, false)
				return
			}
		}
		row(name, "", false, false)
	}
	callers := 0
	if r := reps["stores"]; r != nil && r.Stores != nil {
		callers = r.Stores.Callers
	}
	storeRow(storeFile, fmt.Sprintf("file store ≥ %d durable Sends/s, 64 callers", targetFileSends),
		func(s StoreResult) string {
			return fmt.Sprintf("%.0f/s with %d callers (%s memory's in the same run)", s.SendsPerSec, callers, x(s.SendRatio))
		},
		func(s StoreResult) bool { return s.SendsPerSec >= targetFileSends && callers == 64 })
	storeRow(storePostgres, fmt.Sprintf("postgres store ≥ %d deliveries/s end to end", targetPGDelivered),
		func(s StoreResult) string {
			return fmt.Sprintf("%.0f/s (%s memory's in the same run)", s.Deliver.PerSec, x(s.DeliverRatio))
		},
		func(s StoreResult) bool { return s.Deliver.PerSec >= targetPGDelivered })
	if r := reps["hol"]; r != nil && r.HOL != nil && r.HOL.Paired != nil {
		c := r.HOL.Paired.Comparisons[0]
		rowV("HOL: healthy throughput ≥ 80% of alone", fmt.Sprintf("%.0f vs %.0f/s (median slices); median of %d paired ratios %s, 95%% CI %.2f–%.2f",
			r.HOL.MixedPerSec, r.HOL.AlonePerSec, len(c.Ratios), x(c.Median), c.Low, c.High), ciVerdict(c, targetHOLRatio))
	} else if r != nil && r.HOL != nil {
		row("HOL: healthy throughput ≥ 80% of alone", fmt.Sprintf("%.0f vs %.0f/s = %s", r.HOL.MixedPerSec, r.HOL.AlonePerSec, x(r.HOL.Ratio)), r.HOL.Ratio >= targetHOLRatio, true)
	} else {
		row("HOL: healthy throughput ≥ 80% of alone", "", false, false)
	}
	fmt.Fprintln(w)
}
