package filestore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
)

// The crash test's parent passes these to its children.
const (
	crashChildEnv = "HOOKSMITH_CRASH_CHILD" // set: this process is a child
	crashDBEnv    = "HOOKSMITH_CRASH_DB"
	crashURLEnv   = "HOOKSMITH_CRASH_URL"
	crashKeyEnv   = "HOOKSMITH_CRASH_SECRET"
	crashFromEnv  = "HOOKSMITH_CRASH_FROM"  // the first event number to send
	crashCountEnv = "HOOKSMITH_CRASH_COUNT" // how many to send; 0 only delivers
)

// Crash test shape.
const (
	crashWorkers  = 8   // the child Sender's workers: the most attempts in flight
	crashSenders  = 4   // goroutines calling Send in each child
	crashPerChild = 500 // events each killed child may send
)

// TestCrashRecovery kills a process sending through the file store with SIGKILL at
// random moments, several times, then lets a last one finish. Every event whose Send
// returned is delivered at least once; duplicates come only from attempts in flight when
// a process died, so they are bounded by the deliveries the file held in flight after
// each kill.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts child processes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	kills := 3 + rng.IntN(3)
	t.Logf("seed %d: %d kills", seed, kills)

	secret := webhook.NewSecret()
	rcv := newCountingReceiver(t, secret)
	path := filepath.Join(t.TempDir(), "hooks.db")
	var accepted acceptedEvents
	inFlightAtKills := 0
	deadOwners := map[string]bool{}

	for k := range kills {
		child := startCrashChild(t, path, rcv.URL, secret, k*crashPerChild, crashPerChild, &accepted)
		select {
		case <-child.firstAccepted:
		case <-child.exited:
			t.Fatalf("child %d exited before it was killed: %v\n%s", k, child.err, child.stderr.String())
		case <-ctx.Done():
			t.Fatalf("child %d accepted no event: %v", k, ctx.Err())
		}
		timer := time.NewTimer(time.Duration(10+rng.IntN(290)) * time.Millisecond)
		select {
		case <-timer.C:
		case <-child.exited:
			t.Fatalf("child %d exited before it was killed: %v\n%s", k, child.err, child.stderr.String())
		}
		child.kill()

		// The dead child's lock is gone: count what it left in flight.
		n := countInFlight(t, path, deadOwners)
		inFlightAtKills += n
		t.Logf("kill %d: %d events accepted so far, %d deliveries in flight", k+1, accepted.len(), n)
	}

	// A last child sends nothing and delivers the rest, taking over the dead children's
	// leases as they expire.
	final := startCrashChild(t, path, rcv.URL, secret, 0, 0, &accepted)
	want := accepted.ids()
	counts, err := rcv.waitAll(ctx, want)
	final.kill()
	require.NoError(t, err, "waiting for every accepted event; child output:\n%s", final.stderr.String())

	duplicates, unaccepted := 0, 0
	for id, n := range counts {
		duplicates += n - 1
		if !accepted.has(id) {
			unaccepted++
		}
	}
	for _, id := range want {
		assert.GreaterOrEqual(t, counts[id], 1, "accepted event %s was never delivered", id)
	}
	assert.Zero(t, rcv.rejected.Load(), "requests that failed verification")
	t.Logf("%d kills, %d events accepted, %d delivered (%d sent but not confirmed before a kill), %d duplicates, %d deliveries in flight at kills",
		kills, len(want), len(counts), unaccepted, duplicates, inFlightAtKills)
	assert.LessOrEqual(t, duplicates, inFlightAtKills, "duplicates beyond the attempts in flight at the kills")
	// A Sender holds at most four leases per worker: one attempting, one claimed ahead,
	// and, as results are written asynchronously, one queued for a recorder and one
	// being written by it.
	assert.LessOrEqual(t, inFlightAtKills, kills*4*crashWorkers, "more in flight than a Sender leases")

	// Every accepted event is in the file: Send returned only after it was durable.
	fs, err := filestore.Open(path)
	require.NoError(t, err)
	defer fs.Close()
	stored := map[string]bool{}
	for p := (webhook.ListParams{Limit: 1000}); ; {
		res, err := fs.List(ctx, p)
		require.NoError(t, err)
		for _, d := range res.Deliveries {
			stored[d.EventID] = true
		}
		if res.Next == "" {
			break
		}
		p.Cursor = res.Next
	}
	for _, id := range want {
		assert.True(t, stored[id], "accepted event %s is not in the file", id)
	}
}

// TestCrashChild is the crash test's child process; on its own it skips.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("runs only as a child process of TestCrashRecovery")
	}
	from, err := strconv.Atoi(os.Getenv(crashFromEnv))
	require.NoError(t, err)
	count, err := strconv.Atoi(os.Getenv(crashCountEnv))
	require.NoError(t, err)
	fs, err := filestore.Open(os.Getenv(crashDBEnv), filestore.WithLockTimeout(10*time.Second))
	require.NoError(t, err)
	defer fs.Close()
	s, err := webhook.NewSender(webhook.WithStore(fs), webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_crash", URL: os.Getenv(crashURLEnv), Secret: os.Getenv(crashKeyEnv)}),
		webhook.WithWorkers(crashWorkers), webhook.WithEndpointConcurrency(crashWorkers), webhook.WithTimeout(time.Second), webhook.WithLeaseDuration(6*time.Second))
	require.NoError(t, err)
	defer s.Close(t.Context())

	// The parent kills this process; the deadline only stops a forgotten one.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out sync.Mutex
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range crashSenders {
		wg.Go(func() {
			for n := int(next.Add(1) - 1); n < from+count; n = int(next.Add(1) - 1) {
				id := fmt.Sprintf("msg_crash_%06d", n)
				if _, err := s.Send(ctx, webhook.Event{ID: id, Type: "crash.test", Data: map[string]int{"n": n}}); err != nil {
					t.Errorf("Send %s: %v", id, err)
					return
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "accepted %d %s\n", n, id)
				out.Unlock()
			}
		})
	}
	wg.Wait()
	<-ctx.Done()
}

// crashChild is a running child process.
type crashChild struct {
	cmd           *exec.Cmd
	stderr        bytes.Buffer
	firstAccepted chan struct{}
	exited        chan struct{}
	err           error // set when exited is closed
}

func startCrashChild(t *testing.T, path, url, secret string, from, count int, accepted *acceptedEvents) *crashChild {
	t.Helper()
	c := &crashChild{firstAccepted: make(chan struct{}), exited: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	c.cmd.Env = append(os.Environ(),
		crashChildEnv+"=1", crashDBEnv+"="+path, crashURLEnv+"="+url, crashKeyEnv+"="+secret,
		crashFromEnv+"="+strconv.Itoa(from), crashCountEnv+"="+strconv.Itoa(count))
	var once sync.Once
	c.cmd.Stdout = &lineWriter{line: func(line string) {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "accepted" {
			return
		}
		accepted.add(f[2])
		once.Do(func() { close(c.firstAccepted) })
	}}
	c.cmd.Stderr = &c.stderr
	require.NoError(t, c.cmd.Start())
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	return c
}

// kill ends the child with SIGKILL and waits until it is gone.
func (c *crashChild) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// countInFlight opens the file between children and counts the deliveries left in flight
// by the child just killed: those leased to an owner not in dead, which it then adds.
func countInFlight(t *testing.T, path string, dead map[string]bool) int {
	t.Helper()
	fs, err := filestore.Open(path)
	require.NoError(t, err, "reopening after a kill")
	defer fs.Close()
	n := 0
	owners := map[string]bool{}
	for p := (webhook.ListParams{State: webhook.StateInFlight, Limit: 1000}); ; {
		res, err := fs.List(t.Context(), p)
		require.NoError(t, err)
		for _, d := range res.Deliveries {
			if !dead[d.LeaseOwner] {
				owners[d.LeaseOwner] = true
				n++
			}
		}
		if res.Next == "" {
			for o := range owners {
				dead[o] = true
			}
			return n
		}
		p.Cursor = res.Next
	}
}

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// acceptedEvents are the event IDs whose Send returned nil in some child.
type acceptedEvents struct {
	mu  sync.Mutex
	set map[string]bool
}

func (a *acceptedEvents) add(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.set == nil {
		a.set = make(map[string]bool)
	}
	a.set[id] = true
}

func (a *acceptedEvents) has(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.set[id]
}

func (a *acceptedEvents) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.set)
}

func (a *acceptedEvents) ids() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.set))
	for id := range a.set {
		out = append(out, id)
	}
	return out
}

// countingReceiver is a loopback endpoint that verifies signatures and counts the requests
// it processed per webhook-id.
type countingReceiver struct {
	*httptest.Server
	verifier *webhook.Verifier
	rejected atomic.Int64

	mu      sync.Mutex
	counts  map[string]int
	changed chan struct{} // closed and replaced on every request
}

func newCountingReceiver(t *testing.T, secret string) *countingReceiver {
	v, err := webhook.NewVerifier(secret)
	require.NoError(t, err)
	r := &countingReceiver{verifier: v, counts: make(map[string]int), changed: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	t.Cleanup(r.Close)
	return r
}

func (r *countingReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, webhook.DefaultMaxBodyBytes))
	if err != nil {
		return // the sender died mid-request
	}
	if err := r.verifier.Verify(req.Header, body); err != nil {
		r.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	// Take a while to process, as real receivers do, so kills find attempts in flight;
	// a request whose sender dies meanwhile is dropped unprocessed and must come again.
	timer := time.NewTimer(time.Duration(rand.IntN(20)) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-req.Context().Done():
		return
	}
	r.mu.Lock()
	r.counts[req.Header.Get(webhook.HeaderID)]++
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// waitAll waits until every id was received and returns a snapshot of the counts.
func (r *countingReceiver) waitAll(ctx context.Context, ids []string) (map[string]int, error) {
	for {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if r.counts[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			counts := make(map[string]int, len(r.counts))
			for id, n := range r.counts {
				counts[id] = n
			}
			r.mu.Unlock()
			return counts, nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d accepted events not delivered: %w", missing, len(ids), ctx.Err())
		}
	}
}
