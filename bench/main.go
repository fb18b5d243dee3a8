// Command bench measures hooksmith's Sender against what this machine can do at most (raw
// keep-alive net/http) and against a hand-written go-retryablehttp loop, in one process
// and one run, so that ratios stay meaningful on a noisy machine: the modes run in
// paired slices, each alone in turn, and every figure is a ratio with its confidence
// interval. It also runs the backlog, head-of-line and stores (memory, file, PostgreSQL)
// scenarios, and renders BENCHMARKS.md. Run it from this directory (its own module):
//
//	go run . -workers 8,16,64                  # paired: ceiling, naive, hooksmith, ...
//	go run . -scenario backlog                 # or hol, stores
//	go run . -scenario stores                  # memory vs file vs postgres ($HOOKSMITH_TEST_DATABASE_URL)
//	go run . -render ../bench-out -o ../BENCHMARKS.md  # from saved -json runs
//
// ../scripts/bench.sh runs them all and regenerates BENCHMARKS.md.
//
// The receiver is this program re-executed as a child process on 127.0.0.1, so its CPU,
// allocations and GC stay out of the measured figures. Every run is bounded by -duration.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hooksmith/webhook"
)

type config struct {
	duration        time.Duration
	warmup          time.Duration
	payload         int
	workers         []int
	endpoints       int
	receiverLatency time.Duration
	store           string
	jsonOut         bool
	scenario        string
	modes           []string
	queue           int
	rounds          int
	callers         int
	backlogCount    int
	holEndpoints    int
	holTimeout      time.Duration
	holWarmup       time.Duration
	holCycles       int
	stores          []string
	storeDir        string
	pgConns         int
	maxSends        int
	slice           time.Duration
	settle          time.Duration
	cycles          int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg        config
		workers    string
		modes      string
		child      bool
		renderDir  string
		renderOut  string
		stores     string
		workersDef = "64"
	)
	flag.DurationVar(&cfg.duration, "duration", 3*time.Second, "measured window of each mode")
	flag.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "warm-up before each measured window")
	flag.IntVar(&cfg.payload, "payload", 200, "event data size in bytes (a JSON string); the envelope adds ~110 bytes")
	flag.StringVar(&workers, "workers", workersDef, "worker counts, comma-separated (8,16,64); each is run")
	flag.IntVar(&cfg.endpoints, "endpoints", 1, "endpoints (receiver paths); events are spread round-robin, one delivery each")
	flag.DurationVar(&cfg.receiverLatency, "receiver-latency", 0, "how long the receiver waits before answering")
	flag.StringVar(&cfg.store, "store", storeMemory, "store of the hooksmith modes and scenarios: memory, file (fsync on, a fresh file under -store-dir) or postgres (a fresh schema on $"+envPostgresURL+")")
	flag.StringVar(&stores, "stores", strings.Join(allStores, ","), "stores: the stores to compare, comma-separated")
	flag.StringVar(&cfg.storeDir, "store-dir", os.TempDir(), "directory for the file store's temporary directories (use a real disk: fsync on tmpfs is free)")
	flag.IntVar(&cfg.pgConns, "pg-conns", 16, "the postgres store's pgxpool MaxConns")
	flag.IntVar(&cfg.maxSends, "max-sends", 1_000_000, "stores: the accept window ends after this many Sends if -duration has not passed")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the report as JSON")
	flag.StringVar(&cfg.scenario, "scenario", "paired", "paired, backlog, hol or stores")
	flag.DurationVar(&cfg.slice, "slice", 200*time.Millisecond, "paired: each mode's measured slice per cycle")
	flag.DurationVar(&cfg.settle, "settle", 30*time.Millisecond, "paired: how long a resumed mode runs before its slice is measured")
	flag.IntVar(&cfg.cycles, "cycles", 40, "paired: cycles of every mode, each alone for one slice")
	flag.StringVar(&modes, "modes", strings.Join(allModes, ","), "paired: the modes to run, comma-separated")
	flag.IntVar(&cfg.queue, "queue", 0, "hooksmith's WithQueueCapacity in the paired modes; 0 means 2 x workers")
	flag.IntVar(&cfg.rounds, "rounds", 1, "backlog: rounds of the whole scenario; the median round is reported")
	flag.IntVar(&cfg.callers, "callers", 64, "stores: concurrent Send callers")
	flag.IntVar(&cfg.backlogCount, "backlog-count", 1_000_000, "backlog: pending deliveries")
	flag.IntVar(&cfg.holEndpoints, "hol-endpoints", 1000, "hol: endpoints, every tenth of which hangs")
	flag.DurationVar(&cfg.holTimeout, "hol-timeout", 2*time.Second, "hol: the Sender's WithTimeout")
	flag.DurationVar(&cfg.holWarmup, "hol-warmup", 5*time.Second, "hol: warm-up before measuring, long enough for the hanging endpoints to take effect")
	flag.IntVar(&cfg.holCycles, "hol-cycles", 40, "hol: paired cycles (-slice, -settle) of alone, a second alone (the control) and mixed, each alone for one slice")
	flag.BoolVar(&child, "receiver-child", false, "internal: run as the loopback receiver")
	flag.StringVar(&renderDir, "render", "", "render BENCHMARKS.md from the -json reports and gobench.txt in this directory")
	flag.StringVar(&renderOut, "o", "BENCHMARKS.md", "with -render: the file to write")
	flag.Parse()

	if child {
		return runReceiverChild(cfg.receiverLatency)
	}
	if renderDir != "" {
		return render(renderDir, renderOut)
	}
	var err error
	if cfg.workers, err = parseInts(workers); err != nil {
		return fmt.Errorf("-workers: %w", err)
	}
	cfg.modes = strings.Split(modes, ",")
	cfg.stores = strings.Split(stores, ",")
	for _, m := range cfg.modes {
		if !contains(allModes, m) {
			return fmt.Errorf("-modes: unknown mode %q; choose from %s", m, strings.Join(allModes, ","))
		}
	}
	if err := validate(cfg); err != nil {
		return err
	}
	rcv, err := startReceiver(cfg.receiverLatency)
	if err != nil {
		return err
	}
	defer rcv.stop()
	b := &bench{cfg: cfg, rcv: rcv, sendAt: make([]int64, maxSeq), secret: webhook.NewSecret(),
		payload: jsonString(cfg.payload)}
	defer b.closePG()

	rep := report{Scenario: cfg.scenario, Command: "(cd bench && go run . " + strings.Join(os.Args[1:], " ") + ")",
		Machine: describeMachine(), Settings: settingsOf(cfg, b)}
	switch cfg.scenario {
	case "paired":
		rep.Paired, err = b.paired()
	case "backlog":
		rep.Backlog, err = b.backlog()
	case "hol":
		rep.HOL, err = b.hol()
	case "stores":
		rep.Stores, err = b.stores()
	}
	if err != nil {
		return err
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printText(os.Stdout, rep)
	return nil
}

func validate(cfg config) error {
	var errs []error
	if cfg.duration <= 0 || cfg.duration > 10*time.Minute {
		errs = append(errs, fmt.Errorf("-duration %s: must be positive and at most 10m", cfg.duration))
	}
	if cfg.payload < 2 || cfg.payload > webhook.DefaultMaxPayloadSize/2 {
		errs = append(errs, fmt.Errorf("-payload %d: must be 2 to %d bytes", cfg.payload, webhook.DefaultMaxPayloadSize/2))
	}
	if cfg.rounds < 1 || cfg.rounds > 20 {
		errs = append(errs, fmt.Errorf("-rounds %d: must be 1 to 20", cfg.rounds))
	}
	if cfg.endpoints < 1 || cfg.endpoints > 10000 {
		errs = append(errs, fmt.Errorf("-endpoints %d: must be 1 to 10000", cfg.endpoints))
	}
	for _, w := range cfg.workers {
		if w < 1 || w > 10000 {
			errs = append(errs, fmt.Errorf("-workers %d: must be 1 to 10000", w))
		}
	}
	if !contains(allStores, cfg.store) {
		errs = append(errs, fmt.Errorf("-store %q: unknown; use memory, file or postgres", cfg.store))
	}
	if cfg.store == storePostgres && cfg.scenario != "stores" && os.Getenv(envPostgresURL) == "" {
		errs = append(errs, fmt.Errorf("-store postgres: set %s (eval \"$(bash .ci/postgres.sh start)\")", envPostgresURL))
	}
	for _, s := range cfg.stores {
		if !contains(allStores, s) {
			errs = append(errs, fmt.Errorf("-stores: unknown store %q; choose from %s", s, strings.Join(allStores, ",")))
		}
	}
	if cfg.pgConns < 1 || cfg.pgConns > 1000 {
		errs = append(errs, fmt.Errorf("-pg-conns %d: must be 1 to 1000", cfg.pgConns))
	}
	if cfg.maxSends < 1000 {
		errs = append(errs, fmt.Errorf("-max-sends %d: must be at least 1000", cfg.maxSends))
	}
	if cfg.callers < 1 || cfg.callers > 10000 {
		errs = append(errs, fmt.Errorf("-callers %d: must be 1 to 10000", cfg.callers))
	}
	switch cfg.scenario {
	case "paired", "backlog", "hol", "stores":
	default:
		errs = append(errs, fmt.Errorf("-scenario %q: unknown; use paired, backlog, hol or stores", cfg.scenario))
	}
	if cfg.slice < 10*time.Millisecond || cfg.slice > 10*time.Second {
		errs = append(errs, fmt.Errorf("-slice %s: must be 10ms to 10s", cfg.slice))
	}
	if cfg.settle < 0 || cfg.settle > time.Second {
		errs = append(errs, fmt.Errorf("-settle %s: must be 0 to 1s", cfg.settle))
	}
	if cfg.holCycles < 6 || cfg.holCycles > 1000 {
		errs = append(errs, fmt.Errorf("-hol-cycles %d: must be 6 to 1000 (fewer give no confidence interval)", cfg.holCycles))
	}
	if cfg.cycles < 6 || cfg.cycles > 1000 {
		errs = append(errs, fmt.Errorf("-cycles %d: must be 6 to 1000 (fewer give no confidence interval)", cfg.cycles))
	}
	return errors.Join(errs...)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// jsonString returns a JSON string literal of exactly n bytes.
func jsonString(n int) json.RawMessage {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'x'
	}
	b[0], b[n-1] = '"', '"'
	return b
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// Machine describes where a report was made.
type Machine struct {
	NumCPU     int     `json:"nproc"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	GoVersion  string  `json:"go_version"`
	CPUModel   string  `json:"cpu_model"`
	LoadAvg    string  `json:"load_average_at_start"`
	MemTotalGB float64 `json:"mem_total_gib"`
	Date       string  `json:"date"`
}

func describeMachine() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemTotalGB = float64(kb) / (1 << 20)
		}
	}
	return m
}

// Settings are the flags a report was made with.
type Settings struct {
	Duration        string `json:"duration"`
	Warmup          string `json:"warmup"`
	Payload         int    `json:"payload_bytes"`
	EnvelopeBytes   int    `json:"envelope_bytes"`
	Workers         []int  `json:"workers"`
	Endpoints       int    `json:"endpoints"`
	ReceiverLatency string `json:"receiver_latency"`
	Store           string `json:"store"`
	Queue           string `json:"hooksmith_queue_capacity"`
	Rounds          int    `json:"rounds"`
}

func settingsOf(cfg config, b *bench) Settings {
	q := "2 x workers"
	if cfg.queue > 0 {
		q = strconv.Itoa(cfg.queue)
	}
	return Settings{Duration: cfg.duration.String(), Warmup: cfg.warmup.String(), Payload: cfg.payload,
		EnvelopeBytes: len(b.envelope()), Workers: cfg.workers, Endpoints: cfg.endpoints,
		ReceiverLatency: cfg.receiverLatency.String(), Store: cfg.store, Queue: q, Rounds: cfg.rounds}
}

type report struct {
	Scenario string         `json:"scenario"`
	Command  string         `json:"command"`
	Machine  Machine        `json:"machine"`
	Settings Settings       `json:"settings"`
	Paired   *PairedResult  `json:"paired,omitempty"`
	Backlog  *BacklogResult `json:"backlog,omitempty"`
	HOL      *HOLResult     `json:"hol,omitempty"`
	Stores   *StoresResult  `json:"stores,omitempty"`
}
