// Command durable shows the file store keeping every accepted webhook through a crash:
//
//	go run ./examples/durable
//
// The program plays two roles. As the parent, it runs a receiver and starts itself again
// as a child (-child): the service, which opens a filestore file, sends events and
// delivers them. The receiver answers the first few requests, then answers slowly, so
// deliveries are still pending or in flight when the parent SIGKILLs the child: no
// deferred call, no Close, no flush, as in a crash or an OOM kill. The parent then starts
// a second child on the same file, which finds the undelivered deliveries there and
// delivers them, including the ones that were in flight at the kill, once their leases
// expire. The parent prints the story and exits 0 only if every event the first child
// accepted (its Send returned nil) reached the receiver.
//
// It takes about six seconds, most of it the lease: see leaseDuration.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/filestore"
)

const (
	// events is how many events the first child sends.
	events = 12
	// answeredAtOnce is how many requests the receiver answers before it turns slow.
	answeredAtOnce = 4
	// inFlight caps the child's concurrent attempts to the endpoint. Once this many
	// requests are waiting for their slow answers, the child can make no progress and the
	// parent kills it.
	inFlight = 2

	// attemptTimeout bounds each attempt. A request whose answer is slower is retried.
	attemptTimeout = 500 * time.Millisecond
	// leaseDuration is how long a claimed delivery stays with the Sender that claimed it.
	// It is what a crash costs: a delivery in flight when its Sender died is retried, by
	// any Sender on the file, once its lease expires. The Sender requires it to exceed
	// the attempt timeout by 5s, so that a live attempt never loses its lease.
	leaseDuration = attemptTimeout + 5*time.Second

	// timeout bounds the whole run, so that a bug ends in an error rather than a hang.
	timeout = 30 * time.Second

	// envSecret hands the endpoint's secret to the child: the environment, unlike the
	// command line, is not visible to other users in ps.
	envSecret = "HOOKSMITH_DURABLE_SECRET"
)

func main() {
	if isChild(os.Args[1:]) {
		os.Exit(childMain(os.Args[1:]))
	}
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "durable: FAILED:", err)
		stop()
		os.Exit(1)
	}
}

// run is the parent: the receiver, and the two children one after the other.
func run(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	con := &console{w: out}

	dir, err := os.MkdirTemp("", "hooksmith-durable-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "webhooks.db")
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start it as the child: %w", err)
	}

	// 1. The receiver. It outlives both children: its customer's server does not care
	// that the sender crashed.
	secret := webhook.NewSecret()
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		return err
	}
	recv := newReceiver(verifier, con)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		recv.stopHolding() // lets any held request finish, so Shutdown need not wait
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/webhooks"
	con.printf("receiver  listening on %s; answers %d requests, then holds its answers", url, answeredAtOnce)
	con.printf("parent    store file %s", path)

	// 2. The first child sends every event. The parent waits until all of them are
	// accepted and the child has inFlight requests waiting for answers, then kills it.
	child1, err := startChild(ctx, exe, secret, path, url, events)
	if err != nil {
		return err
	}
	defer child1.stop()
	con.printf("child 1   started (pid %d): opens the file, sends %d events", child1.cmd.Process.Pid, events)
	var accepted []string
	for held := 0; len(accepted) < events || held < inFlight; {
		select {
		case line, ok := <-child1.lines:
			if !ok {
				return fmt.Errorf("child 1 ended before it was killed: %w", child1.wait())
			}
			if id, ok := strings.CutPrefix(line, "accepted "); ok {
				accepted = append(accepted, id)
			}
		case <-recv.held:
			held++
		case <-ctx.Done():
			return fmt.Errorf("waiting for child 1: %w", ctx.Err())
		}
	}
	con.printf("child 1   accepted %d events: each Send returned after its deliveries were fsynced", len(accepted))
	answered, held, _ := recv.counts()
	killedAt := time.Now()
	err = child1.kill()
	con.printf("parent    SIGKILL child 1 with %d delivered, %d in flight, %d never attempted: %v",
		answered, held, len(accepted)-answered-held, err)
	recv.stopHolding()

	// 3. The second child sends nothing: it opens the same file and delivers what it
	// finds there, then exits.
	child2, err := startChild(ctx, exe, secret, path, url, 0)
	if err != nil {
		return err
	}
	defer child2.stop()
	con.printf("child 2   started (pid %d) on the same file", child2.cmd.Process.Pid)
	for done := false; !done; {
		select {
		case line, ok := <-child2.lines:
			if !ok {
				if err := child2.wait(); err != nil {
					return fmt.Errorf("child 2: %w", err)
				}
				done = true
				break
			}
			if n, ok := strings.CutPrefix(line, "recovered "); ok {
				con.printf("child 2   found %s unfinished deliveries: pending ones are due now, in-flight ones when their leases expire (%s)",
					n, leaseDuration)
			}
			if n, ok := strings.CutPrefix(line, "finished "); ok {
				con.printf("child 2   finished %s deliveries, %s after the kill, and exited", n, time.Since(killedAt).Round(100*time.Millisecond))
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for child 2: %w", ctx.Err())
		}
	}

	// 4. Every accepted event must have reached the receiver, at least once.
	var missing []string
	for _, id := range accepted {
		if !recv.processed(id) {
			missing = append(missing, id)
		}
	}
	_, _, dups := recv.counts()
	// Duplicates are the requests in flight at the kill: the receiver had them, the dead
	// child never recorded its answer, so child 2 sent them again.
	con.printf("summary   accepted by child 1: %d, delivered before the kill: %d, after the restart: %d, "+
		"duplicates: %d, missing: %d",
		len(accepted), answered, len(accepted)-answered-len(missing), dups, len(missing))
	if len(missing) > 0 {
		return fmt.Errorf("accepted but never delivered: %s", strings.Join(missing, ", "))
	}
	con.printf("OK        every accepted event was delivered, though the sender was killed")
	return nil
}

// child is a running copy of this program in the child role, as seen by the parent.
type child struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	lines  chan string   // the child's stdout, a line at a time; closed at its end
	quit   chan struct{} // closed by stop: lines are then read and dropped
	exited chan struct{} // closed once the child has exited and err is set
	err    error
	stderr bytes.Buffer
	once   sync.Once
}

// startChild starts this program as a child that sends send events.
func startChild(ctx context.Context, exe, secret, path, url string, send int) (*child, error) {
	// CommandContext kills the child if the run is cancelled or times out.
	cmd := exec.CommandContext(ctx, exe, "-child", "-store", path, "-url", url, "-send", strconv.Itoa(send))
	cmd.Env = append(os.Environ(), envSecret+"="+secret)
	c := &child{cmd: cmd, lines: make(chan string), quit: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The child stops when its stdin ends, so that it does not outlive a parent that dies.
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the child: %w", err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			case <-c.quit:
			}
		}
		close(c.lines)
		// Wait only after the last read from the pipe, as os/exec requires.
		c.err = cmd.Wait()
		if c.err != nil && c.stderr.Len() > 0 {
			c.err = fmt.Errorf("%w: %s", c.err, strings.TrimSpace(c.stderr.String()))
		}
	}()
	return c, nil
}

// kill sends SIGKILL (os.Process.Kill), waits for the child to end and returns how it
// ended.
func (c *child) kill() error {
	_ = c.cmd.Process.Kill()
	return c.stop()
}

// stop stops reading the child's output and waits for it to exit, killing it if it has
// not exited yet. It returns how the child ended. Safe to call more than once.
func (c *child) stop() error {
	c.once.Do(func() {
		close(c.quit)
		_ = c.stdin.Close()
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
		}
	})
	<-c.exited
	return c.err
}

// wait waits for a child whose output has ended and returns how it ended.
func (c *child) wait() error {
	<-c.exited
	return c.err
}

// isChild reports whether the command line asks for the child role.
func isChild(args []string) bool { return len(args) > 0 && args[0] == "-child" }

// childMain is the child's main: it parses the child's flags and runs the service.
func childMain(args []string) int {
	flags := flag.NewFlagSet("durable -child", flag.ContinueOnError)
	flags.Bool("child", true, "run as the child: the service that sends and delivers")
	path := flags.String("store", "", "the filestore file")
	url := flags.String("url", "", "the endpoint's URL")
	send := flags.Int("send", 0, "how many events to send")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The parent closes our stdin to stop us, and so does its death.
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	if err := serve(ctx, os.Stdout, *path, *url, os.Getenv(envSecret), *send); err != nil {
		fmt.Fprintln(os.Stderr, "durable child:", err)
		return 1
	}
	return 0
}

// serve is the service: a Sender on a filestore file. It sends send events, reporting
// each one accepted, and returns once every delivery it found in the file or created is
// finished. Its output is read by the parent, one line per fact.
func serve(ctx context.Context, out io.Writer, path, url, secret string, send int) error {
	store, err := filestore.Open(path)
	if err != nil {
		return err
	}
	// The first child never gets here: SIGKILL skips every deferred call.
	defer store.Close()

	// What an earlier process left unfinished: pending, or in flight when it died.
	unfinished, err := store.Len()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "recovered %d\n", unfinished)

	// The hook counts finished deliveries; it must not block, so it only counts, and
	// closes allDone at the last one.
	total := int64(unfinished + send)
	var finished atomic.Int64
	allDone := make(chan struct{})
	sender, err := webhook.NewSender(
		webhook.WithStore(store),
		webhook.WithEndpoints(webhook.Endpoint{
			ID: "ep_billing", URL: url, Secret: secret, MaxInFlight: inFlight,
		}),
		// The destination guard refuses loopback and private addresses, so that a customer
		// cannot point an endpoint into your network. This example's receiver is on this
		// machine, so loopback is allowed here; a real service leaves the guard alone.
		webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
		webhook.WithWorkers(2*inFlight),
		webhook.WithTimeout(attemptTimeout),
		webhook.WithLeaseDuration(leaseDuration),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{200 * time.Millisecond}, MaxAttempts: 20}),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) {
			if r.Final && finished.Add(1) == total {
				close(allDone)
			}
		}}),
	)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sender.Close(closeCtx)
	}()

	for i := range send {
		// The event ID is set here only so that the parent can check it arrived.
		ev := webhook.Event{ID: webhook.NewEventID(), Type: "invoice.paid",
			Data: map[string]any{"invoice": i + 1, "amount_cents": 1000 * (i + 1)}}
		if _, err := sender.Send(ctx, ev); err != nil {
			return fmt.Errorf("sending event %d: %w", i+1, err)
		}
		// Send has returned: the deliveries are committed and fsynced. From here on, a
		// crash cannot lose this event.
		fmt.Fprintf(out, "accepted %s\n", ev.ID)
	}

	if total > 0 {
		select {
		case <-allDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fmt.Fprintf(out, "finished %d\n", total)
	return nil
}

// receiver is the customer's server: it verifies, de-duplicates on webhook-id, and while
// holding is on, answers only the first answeredAtOnce requests at once. Later ones are
// processed, but their answer is held until the sender's connection drops: the sender
// dies without learning that they were delivered, and sends them again after restarting.
type receiver struct {
	verifier *webhook.Verifier
	con      *console
	held     chan string   // each event ID whose answer is held
	release  chan struct{} // closed by stopHolding

	mu      sync.Mutex
	holding bool
	seen    map[string]bool // event IDs processed
	first   int             // requests answered at once while holding
	inHold  int             // requests whose answer was held
	dups    int
	once    sync.Once
}

func newReceiver(v *webhook.Verifier, con *console) *receiver {
	return &receiver{verifier: v, con: con, held: make(chan string, events), release: make(chan struct{}),
		holding: true, seen: map[string]bool{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := rc.verifier.VerifyRequest(r, 1<<20)
	if err != nil {
		// Answered 401, which the sender treats as permanent: a wrong signature would end
		// in a missing event, and the run would fail.
		rc.con.printf("receiver  rejected: %v -> 401", err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var env webhook.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, "not a webhook envelope", http.StatusBadRequest)
		return
	}
	var data struct {
		Invoice int `json:"invoice"`
	}
	_ = json.Unmarshal(env.Data, &data)

	rc.mu.Lock()
	dup := rc.seen[env.ID]
	hold := !dup && rc.holding && rc.first >= answeredAtOnce
	switch {
	case dup:
		rc.dups++
	case hold:
		rc.inHold++
	case rc.holding:
		rc.first++
	}
	rc.seen[env.ID] = true
	rc.mu.Unlock()

	switch {
	case dup:
		// At least once: acknowledge the repeat, but do not act on it twice.
		rc.con.printf("receiver  invoice %2d %s duplicate, ignored -> 204", data.Invoice, env.ID)
	case hold:
		rc.con.printf("receiver  invoice %2d %s processed, answer delayed...", data.Invoice, env.ID)
		select {
		case rc.held <- env.ID:
		default:
		}
		select {
		case <-r.Context().Done(): // the sender gave up or died
		case <-rc.release:
		}
	default:
		rc.con.printf("receiver  invoice %2d %s processed -> 204", data.Invoice, env.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// stopHolding makes the receiver answer every request at once from now on.
func (rc *receiver) stopHolding() {
	rc.once.Do(func() {
		rc.mu.Lock()
		rc.holding = false
		rc.mu.Unlock()
		close(rc.release)
	})
}

// counts returns the requests answered at once while holding, those held, and the
// duplicates.
func (rc *receiver) counts() (answered, held, dups int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.first, rc.inHold, rc.dups
}

func (rc *receiver) processed(eventID string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.seen[eventID]
}

// console serialises lines from the receiver's and the parent's goroutines.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}
