package pgstore_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/internal/pgtest"
	"github.com/hooksmith/webhook/pgstore"
)

// Multi-process test settings.
const (
	mpEvents   = 20_000
	mpChildren = 3
	mpWorkers  = 16 // per child
	mpSchema   = "multiprocess"
)

// Environment of a TestSenderChild process.
const (
	envChild    = "PGSTORE_TEST_CHILD"
	envURL      = "PGSTORE_TEST_URL"
	envReceiver = "PGSTORE_TEST_RECEIVER"
	envSecret   = "PGSTORE_TEST_SECRET"
	envRange    = "PGSTORE_TEST_RANGE" // "first,count" of the events it sends
)

// TestMultiProcess runs three sender processes on one database, sends 20,000 events
// across them, SIGKILLs one halfway through the deliveries, and checks that every event
// is delivered at least once, that duplicates are bounded by the deliveries the killed
// process held leased when it died, and that nothing is left pending or in flight: the survivors rescued the dead
// process's leases once they expired.
func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and sends 20,000 webhooks")
	}
	url := pgtest.URL(t)
	pool := newPool(t, url)
	store := newStore(t, pool, pgstore.WithSchema(mpSchema))
	secret := webhook.NewSecret()
	verifier, err := webhook.NewVerifier(secret)
	require.NoError(t, err)

	var (
		mu       sync.Mutex
		seen     = make(map[string]int, mpEvents) // webhook-id -> requests
		requests int
		rejected atomic.Int64
		half     = make(chan struct{})
		arrived  = make(chan struct{}, 1) // a request came in
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := verifier.VerifyRequest(r, 0); err != nil {
			rejected.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(webhook.HeaderID)
		mu.Lock()
		seen[id]++
		requests++
		if len(seen) == mpEvents/2 && seen[id] == 1 {
			close(half)
		}
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stderr bytes.Buffer
		sent   chan struct{} // closed when it printed SENT
		id     chan string   // its Sender's ID, the lease owner it writes
		read   chan struct{} // closed when its stdout is drained
	}
	var (
		acceptedMu sync.Mutex
		accepted   = make(map[string]bool, mpEvents)
	)
	start := time.Now()
	children := make([]*child, mpChildren)
	per := (mpEvents + mpChildren - 1) / mpChildren
	for i := range children {
		first, count := i*per, min(per, mpEvents-i*per)
		c := &child{sent: make(chan struct{}), read: make(chan struct{}), id: make(chan string, 1)}
		c.cmd = exec.Command(os.Args[0], "-test.run=^TestSenderChild$", "-test.count=1")
		c.cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+url, envReceiver+"="+rcv.URL,
			envSecret+"="+secret, fmt.Sprintf("%s=%d,%d", envRange, first, count))
		c.cmd.Stderr = &c.stderr
		c.stdin, err = c.cmd.StdinPipe()
		require.NoError(t, err)
		stdout, err := c.cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, c.cmd.Start())
		go func() {
			defer close(c.read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "ACCEPTED "):
					acceptedMu.Lock()
					accepted[strings.TrimPrefix(line, "ACCEPTED ")] = true
					acceptedMu.Unlock()
				case line == "SENT":
					close(c.sent)
				case strings.HasPrefix(line, "SENDER "):
					c.id <- strings.TrimPrefix(line, "SENDER ")
				}
			}
		}()
		children[i] = c
		t.Cleanup(func() { c.cmd.Process.Kill() }) // no-op once it exited
	}

	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-deadline.C:
			mu.Lock()
			n := len(seen)
			mu.Unlock()
			for i, c := range children {
				t.Logf("child %d stderr:\n%s", i, c.stderr.String())
			}
			t.Fatalf("timed out waiting for %s; %d events delivered", what, n)
		}
	}
	// Kill at half the deliveries, whether or not the victim has sent all its events:
	// what it accepted must be delivered, what it did not is no one's promise.
	wait(half, "half the events")
	victim := children[0]
	victimID := <-victim.id                       // printed before its first Send
	require.NoError(t, victim.cmd.Process.Kill()) // SIGKILL: no Close, leases left behind
	mu.Lock()
	atKill := len(seen)
	mu.Unlock()
	killedAt := time.Now()
	// What the dead process held leased (attempting, claimed ahead, or attempted but not
	// yet recorded) bounds the duplicates: anything else it had recorded. Its leases
	// last 6s, far longer than this count takes, so none has been rescued yet.
	leased := 0
	for p := (webhook.ListParams{State: webhook.StateInFlight, Limit: 1000}); ; {
		res, err := store.List(t.Context(), p)
		require.NoError(t, err)
		for _, d := range res.Deliveries {
			if d.LeaseOwner == victimID {
				leased++
			}
		}
		if res.Next == "" {
			break
		}
		p.Cursor = res.Next
	}
	require.Less(t, time.Since(killedAt), 5*time.Second, "counting the dead process's leases took too long to trust")
	<-victim.read
	victim.cmd.Wait()
	t.Logf("killed child 0 after %s, with %d events delivered and %d deliveries leased to it", killedAt.Sub(start).Round(time.Millisecond), atKill, leased)

	for i, c := range children[1:] {
		wait(c.sent, fmt.Sprintf("child %d to send its events", i+1))
	}
	tick := time.NewTicker(100 * time.Millisecond) // for state in other processes; see below
	defer tick.Stop()
	// The events the victim never accepted are sent by a survivor, so all of them are
	// sent across the processes. One it stored but died before reporting is in the
	// database already: it counts as accepted (Send had made it durable) and is not sent
	// again.
	acceptedMu.Lock()
	var unreported []string
	for n := range per {
		if id := "evt_" + strconv.Itoa(n); !accepted[id] {
			unreported = append(unreported, id)
		}
	}
	rows, err := pool.Query(t.Context(), `SELECT event_id FROM `+mpSchema+`.hooksmith_deliveries WHERE event_id = ANY($1)`, unreported)
	require.NoError(t, err)
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, id := range stored {
		accepted[id] = true
	}
	var resend []string
	for _, id := range unreported {
		if !accepted[id] {
			resend = append(resend, "SEND "+strings.TrimPrefix(id, "evt_")+"\n")
		}
	}
	acceptedMu.Unlock()
	_, err = io.WriteString(children[1].stdin, strings.Join(resend, ""))
	require.NoError(t, err)
	t.Logf("child 1 sends the %d events the killed process never accepted (%s after the kill)", len(resend), time.Since(killedAt).Round(time.Millisecond))
	for {
		acceptedMu.Lock()
		n := len(accepted)
		acceptedMu.Unlock()
		if n == mpEvents {
			t.Logf("all %d events accepted %s after the kill", n, time.Since(killedAt).Round(time.Millisecond))
			break
		}
		select {
		case <-arrived:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for the resent events to be accepted: %d of %d", n, mpEvents)
		}
	}
	// Done is every accepted event delivered and nothing left pending or in flight: the
	// survivors must also rescue the dead process's leases once they expire, including
	// deliveries it sent but never recorded (already seen here). That state lives in
	// another process's database rows, so it is checked on each request that arrives
	// and, for the last writes after the last request, on a short tick.
	unfinished := func() int {
		n := 0
		for _, st := range []webhook.State{webhook.StatePending, webhook.StateInFlight} {
			res, err := store.List(t.Context(), webhook.ListParams{State: st, Limit: 1})
			require.NoError(t, err)
			n += len(res.Deliveries)
		}
		return n
	}
	for {
		acceptedMu.Lock()
		mu.Lock()
		undelivered := 0
		for id := range accepted {
			if seen[id] == 0 {
				undelivered++
			}
		}
		mu.Unlock()
		acceptedMu.Unlock()
		if undelivered == 0 && unfinished() == 0 {
			break
		}
		select {
		case <-arrived:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out: %d accepted events undelivered, or deliveries left unfinished", undelivered)
		}
	}
	lastAt := time.Now()
	t.Logf("everything delivered and recorded %s after the kill, %s in all",
		time.Since(killedAt).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The survivors shut down cleanly: Close waits for their last Records.
	for i, c := range children[1:] {
		require.NoError(t, c.stdin.Close())
		<-c.read
		require.NoError(t, c.cmd.Wait(), "child %d: %s", i+1, c.stderr.String())
	}
	t.Logf("survivors exited %s after the last delivery", time.Since(lastAt).Round(time.Millisecond))

	acceptedMu.Lock()
	assert.Len(t, accepted, mpEvents, "every event was sent by some process")
	acceptedMu.Unlock()
	mu.Lock()
	var missing []string
	for id := range accepted {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	assert.Empty(t, missing, "accepted events never delivered")
	duplicates := requests - len(seen)
	mu.Unlock()
	t.Logf("%d requests for %d events: %d duplicates (bound: %d leased to the killed process)", requests, mpEvents, duplicates, leased)
	assert.LessOrEqual(t, duplicates, leased)
	// A request the killed process was writing when it died arrives cut short and fails
	// verification, as it should; nothing else may.
	t.Logf("%d requests failed verification", rejected.Load())
	assert.LessOrEqual(t, rejected.Load(), int64(leased), "requests failing verification")

	for _, st := range []webhook.State{webhook.StatePending, webhook.StateInFlight} {
		res, err := store.List(t.Context(), webhook.ListParams{State: st})
		require.NoError(t, err)
		assert.Empty(t, res.Deliveries, "deliveries left %s", st)
	}
	res, err := store.List(t.Context(), webhook.ListParams{State: webhook.StateSucceeded, Limit: 2 * mpEvents})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, mpEvents, "one succeeded delivery per event")
}

// TestSenderChild is one sender process of TestMultiProcess; alone, it skips. It sends
// its range of events, printing each accepted event ID, then delivers (with the other
// processes) until its stdin closes, and shuts down cleanly.
func TestSenderChild(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("a child process of TestMultiProcess")
	}
	var first, count int
	_, err := fmt.Sscanf(os.Getenv(envRange), "%d,%d", &first, &count)
	require.NoError(t, err)
	pool := newPool(t, os.Getenv(envURL))
	store, err := pgstore.New(t.Context(), pool, pgstore.WithSchema(mpSchema))
	require.NoError(t, err)
	t.Cleanup(store.Close)
	sender, err := webhook.NewSender(webhook.WithStore(store), webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_parent", URL: os.Getenv(envReceiver), Secret: os.Getenv(envSecret)}),
		webhook.WithWorkers(mpWorkers), webhook.WithEndpointConcurrency(mpWorkers),
		webhook.WithTimeout(time.Second), webhook.WithLeaseDuration(6*time.Second),
		webhook.WithPollInterval(time.Second))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, sender.Close(ctx))
	})

	fmt.Fprintln(os.Stdout, "SENDER "+sender.ID())
	var out sync.Mutex
	send := func(n int) bool {
		id := "evt_" + strconv.Itoa(n)
		if _, err := sender.Send(t.Context(), webhook.Event{ID: id, Type: "load.test", Data: map[string]int{"n": n}}); err != nil {
			t.Errorf("Send %s: %v", id, err)
			return false
		}
		out.Lock()
		fmt.Fprintln(os.Stdout, "ACCEPTED "+id)
		out.Unlock()
		return true
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < count && send(first+i); i = int(next.Add(1)) - 1 {
			}
		})
	}
	wg.Wait()
	fmt.Fprintln(os.Stdout, "SENT")
	// Then, until the parent closes stdin, send what it asks for ("SEND <n>": the events
	// a killed process never sent).
	asked := make(chan int)
	for range 8 {
		wg.Go(func() {
			for n := range asked {
				send(n)
			}
		})
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "SEND ")); err == nil {
			asked <- n
		}
	}
	close(asked)
	wg.Wait()
}
