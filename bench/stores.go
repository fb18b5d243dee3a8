package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
	"github.com/hooksmith/webhook/pgstore"
)

// Store names for -store and -stores.
const (
	storeMemory   = "memory"
	storeFile     = "file"
	storePostgres = "postgres"
)

var allStores = []string{storeMemory, storeFile, storePostgres}

// envPostgresURL is where the PostgreSQL store's server comes from (the tests' variable).
const envPostgresURL = "HOOKSMITH_TEST_DATABASE_URL"

// pgSkipped is printed when the PostgreSQL store cannot be measured.
const pgSkipped = `postgres: skipped, set ` + envPostgresURL + ` (eval "$(bash .ci/postgres.sh start)")`

// openStore opens a fresh, empty store of kind and returns the Sender options selecting it,
// bounded to capacity unfinished deliveries where the store can be bounded (-1: unbounded,
// 0: the store's default), and a function that closes and removes it; call that after the
// Sender is closed. The memory store is the Sender's default one (WithQueueCapacity); the
// file store is a new file in a new directory under -store-dir, fsync on; the PostgreSQL
// store is a new schema on the run's pool, dropped afterwards. pgstore has no capacity
// bound, so a postgres store is always unbounded: the scenarios that need a bound keep
// one in the load generator instead (see window).
func (b *bench) openStore(kind string, capacity int) ([]webhook.Option, func(), error) {
	switch kind {
	case storeMemory:
		if capacity == 0 {
			return nil, func() {}, nil
		}
		return []webhook.Option{webhook.WithQueueCapacity(capacity)}, func() {}, nil
	case storeFile:
		dir, err := os.MkdirTemp(b.cfg.storeDir, "hooksmith-bench-")
		if err != nil {
			return nil, nil, err
		}
		var opts []filestore.Option
		if capacity > 0 {
			opts = append(opts, filestore.WithCapacity(capacity))
		}
		fs, err := filestore.Open(filepath.Join(dir, "webhooks.db"), opts...)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return []webhook.Option{webhook.WithStore(fs)}, func() {
			if err := fs.Close(); err != nil {
				b.logf("closing the file store: %v", err)
			}
			os.RemoveAll(dir)
		}, nil
	case storePostgres:
		pool, err := b.pgPool()
		if err != nil {
			return nil, nil, err
		}
		schema := "hooksmith_bench_" + randomHex(6)
		b.pgSchemas = append(b.pgSchemas, schema)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st, err := pgstore.New(ctx, pool, pgstore.WithSchema(schema))
		if err == nil {
			err = st.Migrate(ctx)
			if err != nil {
				st.Close()
			}
		}
		if err != nil {
			b.dropSchema(schema)
			return nil, nil, fmt.Errorf("postgres store in schema %s: %w", schema, err)
		}
		return []webhook.Option{webhook.WithStore(st)}, func() {
			st.Close()
			b.dropSchema(schema)
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q", kind)
}

// newSender opens a fresh store of kind (see openStore) and a Sender on it. The returned
// function closes the Sender, giving in-flight attempts grace, then the store.
func (b *bench) newSender(kind string, capacity int, opts ...webhook.Option) (*webhook.Sender, func(grace time.Duration), error) {
	sopts, closeStore, err := b.openStore(kind, capacity)
	if err != nil {
		return nil, nil, err
	}
	// The receiver is on loopback, which the destination guard refuses by default.
	sopts = append(sopts, webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")))
	s, err := webhook.NewSender(append(sopts, opts...)...)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return s, func(grace time.Duration) { closeSender(s, grace); closeStore() }, nil
}

// pgPool returns the run's pool on $HOOKSMITH_TEST_DATABASE_URL, connecting on first use.
func (b *bench) pgPool() (*pgxpool.Pool, error) {
	if b.pg != nil {
		return b.pg, nil
	}
	url := os.Getenv(envPostgresURL)
	if url == "" {
		return nil, errors.New(pgSkipped)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envPostgresURL, err)
	}
	cfg.MaxConns = int32(b.cfg.pgConns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", envPostgresURL, err)
	}
	b.pg = pool
	return pool, nil
}

// pgSettings describes the server: version and the settings that decide durability.
func (b *bench) pgSettings() string {
	pool, err := b.pgPool()
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []string
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers"} {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return "unknown: " + err.Error()
		}
		parts = append(parts, name+"="+v)
	}
	return strings.Join(parts, " ")
}

func (b *bench) dropSchema(schema string) {
	if b.pg == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.pg.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		b.logf("dropping schema %s: %v", schema, err)
	}
}

// closePG drops whatever schema is left (after an error) and closes the pool.
func (b *bench) closePG() {
	if b.pg == nil {
		return
	}
	for _, s := range b.pgSchemas {
		b.dropSchema(s)
	}
	b.pg.Close()
	b.pg = nil
}

func randomHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}

// fsType names the file system holding dir, so that a tmpfs (where fsync costs nothing)
// shows in the report.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext2/3/4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs (fsync is free: not a durable figure)"
	case 0x794C7630:
		return "overlayfs"
	}
	return fmt.Sprintf("0x%x", uint64(st.Type))
}

// window bounds how many deliveries a load generator has unfinished: a caller takes a
// slot before Send and the Sender's OnAttempt hook gives it back when the delivery is
// final (after its result is recorded in the store). It is the same bound for every
// store, including pgstore, which has none of its own. Events of the exempt types take
// no slot and give none back (the hol scenario's hanging endpoints, whose deliveries
// never finish in its window).
type window struct {
	slots  chan struct{}
	exempt map[string]bool // event types
}

func newWindow(n int) *window { return &window{slots: make(chan struct{}, n)} }

// feedWindow returns the window that bounds a throughput mode's or a scenario's feeders
// to capacity unfinished deliveries, with the Sender options that give its slots back,
// on a store without a bound of its own (pgstore), or on any store with always set;
// otherwise nil, and no options, since the store's capacity bounds Send. Events of the
// exempt types take no slot.
func (b *bench) feedWindow(capacity int, exempt map[string]bool, always bool) (*window, []webhook.Option) {
	if b.cfg.store != storePostgres && !always {
		return nil, nil
	}
	w := newWindow(capacity)
	w.exempt = exempt
	return w, []webhook.Option{webhook.WithHooks(w.hooks())}
}

// takes reports whether an event of type typ takes a slot of w (none of a nil window).
func (w *window) takes(typ string) bool { return w != nil && !w.exempt[typ] }

func (w *window) acquire(ctx context.Context) bool {
	select {
	case w.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *window) release() {
	select {
	case <-w.slots:
	default:
	}
}

func (w *window) hooks() webhook.Hooks {
	return webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) {
		if r.Final && w.takes(r.Delivery.EventType) {
			w.release()
		}
	}}
}

// StoresResult is the stores scenario: for each store, accepted Sends/s while the
// endpoint is held, and deliveries/s end to end, each beside the memory store's from the
// same run and receiver.
type StoresResult struct {
	Callers         int           `json:"callers"`
	Workers         int           `json:"workers"`
	Window          int           `json:"window"`
	MaxSends        int           `json:"max_sends_per_accept_window"`
	StoreDir        string        `json:"file_store_dir"`
	StoreDirFS      string        `json:"file_store_fs"`
	PGConns         int           `json:"pg_pool_max_conns"`
	PGSettings      string        `json:"pg_settings,omitempty"`
	Stores          []StoreResult `json:"stores"`
	PostgresSkipped string        `json:"postgres_skipped,omitempty"`
}

// StoreResult is one store's figures.
type StoreResult struct {
	Store string `json:"store"`
	// Accept: -callers goroutines Send to one endpoint that is held (MaxInFlight 1, its
	// one attempt hanging), so nothing is delivered and every Send is a durable enqueue.
	SendsPerSec float64 `json:"accepted_sends_per_sec"`
	Sends       int64   `json:"accepted_sends"`
	SendSeconds float64 `json:"accept_seconds"`
	SendP50     float64 `json:"send_p50_us"`
	SendP99     float64 `json:"send_p99_us"`
	SendCPU     float64 `json:"send_cpu_us_per_send"`
	SendErrors  int64   `json:"send_errors"`
	// Deliver: Send to receiver's 204, closed loop bounded by the window.
	Deliver ModeResult `json:"deliver"`
	// Ratios to the memory store of the same run.
	SendRatio    float64 `json:"accepted_ratio_to_memory,omitempty"`
	DeliverRatio float64 `json:"deliver_ratio_to_memory,omitempty"`
}

// stores measures every -stores store: first each one's accept phase, then each one's
// deliver phase, stores interleaved within a phase so passing load weighs on them alike.
// Every phase gets a fresh, empty store.
func (b *bench) stores() (*StoresResult, error) {
	workers := b.cfg.workers[0]
	win := b.queueCapacity(workers)
	res := &StoresResult{Callers: b.cfg.callers, Workers: workers, Window: win, MaxSends: b.cfg.maxSends,
		StoreDir: b.cfg.storeDir, StoreDirFS: fsType(b.cfg.storeDir), PGConns: b.cfg.pgConns}
	var kinds []string
	for _, k := range b.cfg.stores {
		if k == storePostgres {
			if _, err := b.pgPool(); err != nil {
				res.PostgresSkipped = err.Error()
				fmt.Fprintln(os.Stderr, err)
				continue
			}
			res.PGSettings = b.pgSettings()
		}
		kinds = append(kinds, k)
	}
	byKind := map[string]*StoreResult{}
	for _, k := range kinds {
		res.Stores = append(res.Stores, StoreResult{Store: k})
	}
	for i := range res.Stores {
		byKind[res.Stores[i].Store] = &res.Stores[i]
	}
	for _, k := range kinds {
		b.logf("stores: %s, %d callers Sending to a held endpoint...", k, b.cfg.callers)
		if err := b.storeAccept(k, workers, byKind[k]); err != nil {
			return nil, fmt.Errorf("%s store, accept: %w", k, err)
		}
	}
	for _, k := range kinds {
		b.logf("stores: %s, end to end, %d workers, window %d...", k, workers, win)
		r, err := b.measure("store-"+k, workers, 1, b.storeDeliver(k, workers, win))
		if err != nil {
			return nil, fmt.Errorf("%s store, deliver: %w", k, err)
		}
		r.Label = "Sender on the " + k + " store, WithEndpointConcurrency(workers), window of unfinished deliveries"
		byKind[k].Deliver = r
	}
	if mem := byKind[storeMemory]; mem != nil {
		for i := range res.Stores {
			r := &res.Stores[i]
			r.SendRatio = ratio(r.SendsPerSec, mem.SendsPerSec)
			r.DeliverRatio = ratio(r.Deliver.PerSec, mem.Deliver.PerSec)
		}
	}
	return res, nil
}

// storeAccept: -callers goroutines Send as fast as they can to one endpoint that is held,
// so the store only accepts. Send makes no delivery for a disabled endpoint, so "held" is
// the backlog scenario's: MaxInFlight 1 and a URL that hangs the one attempt; the
// dispatcher keeps running and skips the endpoint while it is at its cap. The store is
// unbounded; the window ends after -duration or -max-sends Sends, whichever comes first.
func (b *bench) storeAccept(kind string, workers int, out *StoreResult) error {
	eps, types := b.benchEndpoints(b.urls(1))
	eps[0].URL, eps[0].MaxInFlight = b.rcv.base+"/hang/0", 1
	s, closeAll, err := b.newSender(kind, -1, webhook.WithEndpoints(eps...), webhook.WithWorkers(workers),
		webhook.WithEndpointConcurrency(workers))
	if err != nil {
		return err
	}
	var (
		sent, errs          atomic.Int64
		recording, stopping atomic.Bool
		wg                  sync.WaitGroup
		hardCap             = int64(3 * b.cfg.maxSends) // warm-up included; bounds the memory store's heap
		durs                = make([][]int64, b.cfg.callers)
	)
	ctx, cancel := context.WithCancel(context.Background())
	for c := range b.cfg.callers {
		wg.Go(func() {
			ev := webhook.Event{Type: types[0], Data: b.payload}
			for !stopping.Load() && sent.Load() < hardCap {
				t := time.Now()
				_, err := s.Send(ctx, ev)
				d := time.Since(t)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				sent.Add(1)
				if recording.Load() {
					durs[c] = append(durs[c], int64(d))
				}
			}
		})
	}
	time.Sleep(b.cfg.warmup)
	n0, t0, cpu0 := sent.Load(), time.Now(), processCPU()
	recording.Store(true)
	for time.Since(t0) < b.cfg.duration && sent.Load()-n0 < int64(b.cfg.maxSends) {
		time.Sleep(5 * time.Millisecond)
	}
	n1, secs, cpu1 := sent.Load(), time.Since(t0).Seconds(), processCPU()
	recording.Store(false)
	stopping.Store(true)
	cancel()
	wg.Wait()
	closeAll(100 * time.Millisecond) // aborts the hanging attempt
	if err := b.rcv.releaseHangs(); err != nil {
		return err
	}
	out.Sends, out.SendSeconds = n1-n0, secs
	out.SendsPerSec = float64(out.Sends) / secs
	if out.Sends > 0 {
		out.SendCPU = micros(cpu1-cpu0) / float64(out.Sends)
	}
	out.SendErrors = errs.Load()
	var all []int64
	for _, d := range durs {
		all = append(all, d...)
	}
	p := percentiles(all, 0.5, 0.99)
	out.SendP50, out.SendP99 = micros(p[0]), micros(p[1])
	return nil
}

// storeDeliver: a Sender on a fresh store of kind delivering to the answering receiver
// path with every worker; -callers goroutines Send, at most window deliveries unfinished.
func (b *bench) storeDeliver(kind string, workers, win int) starter {
	return func(l *load) (func(), error) {
		eps, types := b.benchEndpoints(b.urls(1))
		w := newWindow(win)
		s, closeAll, err := b.newSender(kind, -1, webhook.WithEndpoints(eps...), webhook.WithWorkers(workers),
			webhook.WithEndpointConcurrency(workers), webhook.WithHooks(w.hooks()))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		l.feed(ctx, s, b.cfg.callers, w, types, b.payload)
		return func() {
			l.stopping.Store(true)
			cancel()
			l.wg.Wait()
			closeAll(10 * time.Second)
		}, nil
	}
}
