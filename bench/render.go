package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Floors the benchmarks hold the Sender to (see ../docs/performance.md).
const (
	floorCeiling = 0.80 // hooksmith against raw net/http, 64 workers
	floorNaive   = 1.00 // hooksmith against the naive go-retryablehttp loop, every worker count
	floorBacklog = 600  // heap bytes per pending delivery beyond its payload
	floorDrain   = 0.75 // the whole drain of a backlog against the Sender's steady rate
	floorHOL     = 0.80 // healthy endpoints beside hanging ones, against alone
)

// printText writes a report for people.
func printText(w io.Writer, rep report) {
	m := rep.Machine
	fmt.Fprintf(w, "%s | %d CPUs (GOMAXPROCS %d), %s, load %s\n\n", m.CPUModel, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.LoadAvg)
	writeReport(w, rep, false)
}

func writeReport(w io.Writer, rep report, md bool) {
	switch {
	case rep.Paired != nil:
		writePaired(w, rep.Paired, md)
	case rep.Backlog != nil:
		writeBacklog(w, rep.Backlog, md)
	case rep.HOL != nil:
		writeHOL(w, rep.HOL, md)
	case rep.Stores != nil:
		writeStores(w, rep.Stores, md)
	}
}

func writePaired(w io.Writer, r *PairedResult, md bool) {
	head := []string{"workers", "mode", "deliveries/s (median slice)", "CPU µs/dlv", "receiver CPU µs/dlv"}
	bases := []string{modeCeiling, modeCeilingHeader, modeNaive}
	for _, b := range bases {
		head = append(head, "vs "+b+" (95% CI)")
	}
	var rows [][]string
	for _, blk := range r.Blocks {
		for _, m := range blk.Modes {
			row := []string{strconv.Itoa(blk.Workers), m.Mode, f0(m.MedianPerSec), f1(m.CPUMicrosPer), f1(m.ReceiverCPUMicrosPer)}
			for _, b := range bases {
				cell := ""
				if c, ok := blk.comparison(m.Mode, b); ok {
					cell = ci(c)
				}
				row = append(row, cell)
			}
			rows = append(rows, row)
		}
	}
	table(w, md, head, rows)
	fmt.Fprintln(w)
}

func writeBacklog(w io.Writer, r *BacklogResult, md bool) {
	items := []string{
		fmt.Sprintf("%d pending deliveries of a %d B payload (envelope %d B) for one endpoint whose one attempt hangs, %d workers", r.Pending, r.PayloadBytes, r.EnvelopeBytes, r.Workers),
		fmt.Sprintf("heap per pending delivery: %.0f B, of which beyond the payload %.0f B (worst round %.0f B)", r.HeapPerDelivery, r.BeyondPayload, r.WorstBeyondPayload),
		fmt.Sprintf("Send into the backlog: %.0f/s; peak RSS %.0f MiB; one collection with the backlog held: %.0f ms of collector CPU (%.1f ms before it)", r.EnqueuePerSec, r.PeakRSSMiB, r.GCCycleHeldMillis, r.GCCycleBaseMillis),
		fmt.Sprintf("the whole drain: %.1f s = %.0f/s, %s of the Sender's steady %.0f/s; the collector took %.1f s of its %.1f s of CPU", r.WholeDrainSeconds, r.WholeDrainPerSec, x(r.WholeDrainToSteady), r.SteadyPerSec, r.WholeDrainGCCPU, r.WholeDrainCPU),
	}
	if len(r.Rounds) > 1 {
		items = append(items, fmt.Sprintf("%d rounds; the whole drain against the steady rate per round: %s", len(r.Rounds), joinX(r.Rounds)))
	}
	list(w, md, items)
}

func writeHOL(w io.Writer, r *HOLResult, md bool) {
	list(w, md, []string{
		fmt.Sprintf("%d endpoints, every tenth (%d) hanging until the %s timeout, %d workers, default options otherwise; warm-up %s", r.Endpoints, r.Hanging, r.Timeout, r.Workers, r.Warmup),
		"three Senders fed by their own loads (alone, alone again as the control, with the hanging endpoints), each run alone for a slice per cycle",
		fmt.Sprintf("healthy deliveries/s: alone %.0f, with the hanging ones %.0f; hanging requests started %.1f/s; send errors %d", r.AlonePerSec, r.MixedPerSec, r.HungPerSec, r.MixedSendError),
	})
	if p := r.Paired; p != nil {
		var rows [][]string
		for _, m := range p.Modes {
			row := []string{m.Mode, f0(m.MedianPerSec), f1(m.CPUMicrosPer), ""}
			for _, c := range p.Comparisons {
				if c.Mode == m.Mode {
					row[3] = ci(c)
				}
			}
			rows = append(rows, row)
		}
		table(w, md, []string{"mode", "healthy deliveries/s (median slice)", "CPU µs/dlv", "vs alone (95% CI)"}, rows)
		fmt.Fprintln(w)
	}
}

func writeStores(w io.Writer, r *StoresResult, md bool) {
	items := []string{
		fmt.Sprintf("accepted Sends/s: %d callers Send to one held endpoint, so every Send is a durable enqueue (file: committed and fsynced in %s, %s)", r.Callers, r.StoreDir, r.StoreDirFS),
		fmt.Sprintf("end to end: %d callers, a Sender with %d workers delivering to the receiver's 204, at most %d deliveries unfinished", r.Callers, r.Workers, r.Window),
	}
	if r.PostgresSkipped != "" {
		items = append(items, r.PostgresSkipped)
	} else {
		items = append(items, "postgres: "+r.PGSettings)
	}
	list(w, md, items)
	var rows [][]string
	for _, s := range r.Stores {
		rows = append(rows, []string{s.Store, fmt.Sprintf("%.0f (%s)", s.SendsPerSec, x(s.SendRatio)), f1(s.SendCPU),
			fmt.Sprintf("%.0f (%s)", s.Deliver.PerSec, x(s.DeliverRatio)), f0(s.Deliver.P99Micros), f1(s.Deliver.CPUMicrosPer)})
	}
	table(w, md, []string{"store", "accepted Sends/s (vs memory)", "CPU µs/Send", "deliveries/s end to end (vs memory)", "p99 µs", "CPU µs/dlv"}, rows)
	fmt.Fprintln(w)
}

// render writes BENCHMARKS.md from dir's paired.json, backlog.json, hol.json, stores.json
// and gobench.txt; a missing one is reported as not run.
func render(dir, out string) error {
	names := []string{"paired", "backlog", "hol", "stores"}
	reps := map[string]*report{}
	for _, n := range names {
		r, err := readReport(dir, n+".json")
		if err != nil {
			return err
		}
		reps[n] = r
	}
	var w bytes.Buffer
	fmt.Fprintf(&w, "# Benchmarks\n\nThe last full run of `scripts/bench.sh`, which writes this file; ../docs/performance.md explains\n")
	fmt.Fprintf(&w, "the method. Every ratio compares figures from the same process and run, with a distribution-free 95%%\n")
	fmt.Fprintf(&w, "confidence interval where slices are paired.\n\n")
	for _, n := range names {
		if r := reps[n]; r != nil {
			m := r.Machine
			fmt.Fprintf(&w, "Machine: %s, %d CPUs, %.0f GiB, %s, load average %s at the start, %s.\n\n", m.CPUModel, m.NumCPU, m.MemTotalGB, m.GoVersion, m.LoadAvg, m.Date)
			break
		}
	}
	fmt.Fprintf(&w, "## Floors\n\n| floor | figure | held |\n| --- | --- | --- |\n")
	for _, f := range floors(reps) {
		fmt.Fprintf(&w, "| %s | %s | %s |\n", f[0], f[1], f[2])
	}
	fmt.Fprintln(&w)
	titles := map[string]string{"paired": "Paired throughput", "backlog": "Backlog", "hol": "Head-of-line blocking", "stores": "Stores"}
	for _, n := range names {
		fmt.Fprintf(&w, "## %s\n\n", titles[n])
		if r := reps[n]; r != nil {
			fmt.Fprintf(&w, "`%s`\n\n", r.Command)
			writeReport(&w, *r, true)
		} else {
			fmt.Fprintf(&w, "not run\n\n")
		}
	}
	fmt.Fprintf(&w, "## Micro-benchmarks\n\n")
	if gb, err := os.ReadFile(filepath.Join(dir, "gobench.txt")); err == nil {
		fmt.Fprintf(&w, "`go test -run '^$' -bench . -benchmem -benchtime 0.3s -count 3 .`\n\n```\n")
		sc := bufio.NewScanner(bytes.NewReader(gb))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Benchmark") {
				fmt.Fprintln(&w, sc.Text())
			}
		}
		fmt.Fprintf(&w, "```\n")
	} else {
		fmt.Fprintf(&w, "not run\n")
	}
	return os.WriteFile(out, w.Bytes(), 0o644)
}

// floors returns each floor with the figure that decides it and the verdict.
func floors(reps map[string]*report) [][3]string {
	var out [][3]string
	add := func(name, fig, v string) { out = append(out, [3]string{name, fig, v}) }
	if r := reps["paired"]; r != nil && r.Paired != nil {
		for _, blk := range r.Paired.Blocks {
			if c, ok := blk.comparison(modeHooksmith, modeCeiling); ok && blk.Workers == 64 {
				add("hooksmith ≥ 0.80x raw net/http, 64 workers", ci(c), verdict(c, floorCeiling))
			}
			if c, ok := blk.comparison(modeHooksmith, modeNaive); ok {
				add(fmt.Sprintf("hooksmith ≥ the naive loop, %d workers", blk.Workers), ci(c), verdict(c, floorNaive))
			}
		}
	}
	if r := reps["backlog"]; r != nil && r.Backlog != nil {
		bl := r.Backlog
		worst := max(bl.WorstBeyondPayload, bl.BeyondPayload)
		add("a backlog of a million: ≤ 600 B of heap each beyond its payload", fmt.Sprintf("%.0f B", worst), yes(worst <= floorBacklog))
		add("the backlog drained at ≥ 0.75x the Sender's steady rate", fmt.Sprintf("%s (%.0f vs %.0f/s)", x(bl.WholeDrainToSteady), bl.WholeDrainPerSec, bl.SteadyPerSec), yes(bl.WholeDrainToSteady >= floorDrain))
	}
	if r := reps["hol"]; r != nil && r.HOL != nil && r.HOL.Paired != nil {
		c := r.HOL.Paired.Comparisons[0]
		add("1,000 endpoints, 10% hanging: healthy ones ≥ 0.80x of alone", ci(c), verdict(c, floorHOL))
	}
	if r := reps["stores"]; r != nil && r.Stores != nil {
		for _, s := range r.Stores.Stores {
			if s.Store == storeFile {
				add("file store end to end (deliveries/s, 64 workers), against the memory store", fmt.Sprintf("%.0f/s, %s", s.Deliver.PerSec, x(s.DeliverRatio)), "reported")
			}
		}
	}
	return out
}

// verdict decides a floor from a paired interval: held when all of it is at or above the
// floor, not held when all of it is below, otherwise undecided by this run.
func verdict(c Comparison, floor float64) string {
	switch {
	case c.Low >= floor:
		return "yes"
	case c.High < floor:
		return "no"
	}
	return "within the interval"
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func ci(c Comparison) string { return fmt.Sprintf("%s (%.2f–%.2f)", x(c.Median), c.Low, c.High) }

func x(r float64) string  { return strconv.FormatFloat(r, 'f', 2, 64) + "x" }
func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func joinX(xs []float64) string {
	var out []string
	for _, v := range xs {
		out = append(out, strconv.FormatFloat(v, 'f', 2, 64))
	}
	return strings.Join(out, " ")
}

func list(w io.Writer, md bool, items []string) {
	for _, it := range items {
		if md {
			fmt.Fprintf(w, "- %s\n", it)
		} else {
			fmt.Fprintf(w, "  %s\n", it)
		}
	}
	fmt.Fprintln(w)
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
