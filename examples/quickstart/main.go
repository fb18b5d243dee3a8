// Command quickstart sends signed webhooks to a receiver running in the same process, on
// loopback, so it works on any machine with no network and no setup:
//
//	go run ./examples/quickstart      # a readable story of what happened
//	go run ./examples/quickstart -v   # plus the library's own debug logs
//
// It starts a receiver that verifies Standard Webhooks signatures and ignores repeated
// webhook-id values, builds a Sender with one endpoint pointing at it, sends a few events,
// and makes the receiver fail the first request of one event so that the retry can be
// seen. It exits non-zero if any event was not delivered or any request did not verify.
//
// Copy it as a starting point: the sending half is what a service does, the receiving
// half is what your customers (or examples/receiver) do.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hooksmith/webhook"
)

func main() {
	verbose := flag.Bool("v", false, "also print the library's debug logs (zap development logger)")
	flag.Parse()

	// Ctrl-C cancels the context, which every wait below honours.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var opts []webhook.Option
	if *verbose {
		logger, err := zap.NewDevelopment()
		if err != nil {
			fmt.Fprintln(os.Stderr, "quickstart:", err)
			os.Exit(1)
		}
		defer func() { _ = logger.Sync() }()
		opts = append(opts, webhook.WithLogger(logger))
	}
	if err := run(ctx, os.Stdout, opts...); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart: FAILED:", err)
		stop()
		os.Exit(1)
	}
}

// The events the quickstart sends. The receiver fails the first request for flakyType,
// as a receiver in the middle of a deploy would, so that one is delivered on a retry.
var events = []webhook.Event{
	{Type: "user.registered", Data: map[string]any{"user_id": "u_123", "email": "ada@example.com"}},
	{Type: "order.created", Data: map[string]any{"order_id": "o_456", "total_cents": 4200}},
	{Type: "order.shipped", Data: map[string]any{"order_id": "o_456", "carrier": "DHL"}},
}

const flakyType = "order.created"

// timeout bounds the whole run: with the retry schedule below it needs about a second,
// and a bug should end in an error, not a hang.
const timeout = 15 * time.Second

// run is the whole program. Extra Sender options (a logger, say) are appended to its own.
func run(ctx context.Context, out io.Writer, opts ...webhook.Option) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	con := &console{w: out}

	// 1. The receiver. The secret is shared out of band: the receiving side gets it when
	// it registers its endpoint with you. NewSecret makes a random "whsec_..." one.
	secret := webhook.NewSecret()
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		return err
	}
	recv := &receiver{verifier: verifier, con: con, failFirst: map[string]bool{flakyType: true},
		state: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // port 0: any free port, so nothing clashes
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		// Shutdown waits for in-flight requests; Serve then returns ErrServerClosed.
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/webhooks"
	con.printf("receiver  listening on %s", url)

	// 2. The Sender. Hooks are called synchronously on the worker that made the attempt,
	// so they must not block: the channel is buffered for every attempt the run can make
	// (each event has at most maxAttempts).
	const maxAttempts = 3
	reports := make(chan webhook.AttemptReport, len(events)*maxAttempts)
	opts = append([]webhook.Option{
		webhook.WithEndpoints(webhook.Endpoint{
			ID:     "ep_quickstart",
			URL:    url,
			Secret: secret,
			// Which events this endpoint wants: exact types or "prefix.*" wildcards.
			EventTypes: []string{"user.*", "order.*"},
		}),
		// The default schedule waits 5s, then ~35s, ... (see webhook.DefaultSchedule);
		// a demo wants its retry within a second.
		webhook.WithRetryPolicy(webhook.RetryPolicy{
			Schedule:    webhook.FixedSchedule{500 * time.Millisecond},
			MaxAttempts: maxAttempts,
		}),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) { reports <- r }}),
		// The destination guard refuses loopback and private networks by default, so a
		// customer's URL cannot reach into yours; this demo's receiver is on loopback.
		webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")),
	}, opts...)
	sender, err := webhook.NewSender(opts...)
	if err != nil {
		return err
	}
	// Close stops the workers. Deliveries not yet made stay in the store; with the default
	// in-memory store they are lost, which is why a real service uses a durable store
	// (filestore or pgstore) and closes the Sender on shutdown.
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sender.Close(closeCtx)
	}()

	// 3. Send. Send returns once the deliveries are stored, not once they are delivered:
	// delivery happens in the background, with retries.
	eventOf := map[string]string{} // delivery ID -> event type, for the log
	for _, ev := range events {
		ids, err := sender.Send(ctx, ev)
		if err != nil {
			return fmt.Errorf("sending %s: %w", ev.Type, err)
		}
		for _, id := range ids {
			eventOf[id] = ev.Type
		}
		con.printf("sender    queued %-15s -> %d delivery", ev.Type, len(ids))
	}

	// 4. Wait until every delivery is finished, delivered or not. A service does not wait
	// like this; the demo does, to report and to exit.
	var failed []string
	for finished := 0; finished < len(eventOf); {
		select {
		case r := <-reports:
			logAttempt(con, r)
			if !r.Final {
				continue
			}
			finished++
			if r.Verdict != webhook.Delivered {
				failed = append(failed, fmt.Sprintf("%s (%s)", r.Delivery.EventType, r.Delivery.LastError))
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for deliveries: %w", ctx.Err())
		}
	}

	// 5. The receiver must reject what was not signed with the secret.
	if err := postForged(ctx, con, url); err != nil {
		return err
	}

	// A request that fails verification is answered 401, which the Sender treats as
	// permanent, so "every delivery delivered" also means "every request verified".
	processed, rejected, duplicates := recv.counts()
	con.printf("summary   events sent: %d, processed: %d, duplicates ignored: %d, requests rejected: %d",
		len(events), processed, duplicates, rejected)
	switch {
	case len(failed) > 0:
		return fmt.Errorf("not delivered: %s", strings.Join(failed, ", "))
	case processed != len(events):
		return fmt.Errorf("the receiver processed %d of %d events", processed, len(events))
	}
	con.printf("OK        every event was delivered and verified")
	return nil
}

// logAttempt prints one attempt as the sender saw it.
func logAttempt(con *console, r webhook.AttemptReport) {
	d, a := r.Delivery, r.Attempt
	result := fmt.Sprintf("HTTP %d", a.StatusCode)
	if a.StatusCode == 0 {
		result = a.Error // no response: connection refused, timeout, ...
	}
	switch {
	case r.Verdict == webhook.Delivered:
		con.printf("sender    %-15s attempt %d: %s, delivered in %s", d.EventType, d.Attempts, result, a.Duration.Round(time.Millisecond))
	case r.Final:
		con.printf("sender    %-15s attempt %d: %s, giving up (%s)", d.EventType, d.Attempts, result, r.Verdict)
	default:
		con.printf("sender    %-15s attempt %d: %s, will retry in %s", d.EventType, d.Attempts, result,
			d.NextAttemptAt.Sub(d.UpdatedAt).Round(100*time.Millisecond))
	}
}

// postForged sends a request signed with a secret the receiver does not know, as an
// attacker guessing the URL would, and checks that it is refused.
func postForged(ctx context.Context, con *console, url string) error {
	body := `{"id":"msg_forged","type":"order.refunded","timestamp":"2026-01-02T15:04:05Z","version":"1","data":{}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	wrong, err := webhook.ParseSecret(webhook.NewSecret())
	if err != nil {
		return err
	}
	msg := webhook.Message{ID: "msg_forged", Timestamp: time.Now(), Body: []byte(body)}
	if err := (webhook.StandardSigner{}).Sign(req.Header, msg, []webhook.Secret{wrong}); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("a forged request was answered %d, want 401", resp.StatusCode)
	}
	con.printf("forger    request signed with the wrong secret: HTTP %d, as it should be", resp.StatusCode)
	return nil
}

// receiver is the customer's side: verify, de-duplicate, process, answer 2xx quickly.
type receiver struct {
	verifier *webhook.Verifier
	con      *console

	mu        sync.Mutex
	failFirst map[string]bool // event types whose next request gets a 503
	state     map[string]bool // webhook-id -> processed; production keeps this in its database
	rejected  int             // requests that did not verify
	dups      int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Verify before anything else, on the raw bytes: re-encoded JSON would not match the
	// signature. The limit keeps a hostile client from making us buffer gigabytes.
	body, err := rc.verifier.VerifyRequest(r, 1<<20)
	id := r.Header.Get(webhook.HeaderID)
	if err != nil {
		rc.mu.Lock()
		rc.rejected++
		rc.mu.Unlock()
		rc.con.printf("receiver  %s rejected: %v -> 401", id, err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var env webhook.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		// Signed but unreadable: retrying cannot help, and a 4xx tells the sender so.
		http.Error(w, "not a webhook envelope", http.StatusBadRequest)
		return
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	// Delivery is at least once: the same webhook-id can arrive again (a retry after a
	// lost response). Acknowledge it, but do not act on it twice.
	if rc.state[id] {
		rc.dups++
		rc.con.printf("receiver  %-15s %s signature ok, duplicate -> 204", env.Type, id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if rc.failFirst[env.Type] {
		delete(rc.failFirst, env.Type)
		rc.con.printf("receiver  %-15s %s signature ok, simulating an outage -> 503", env.Type, id)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	// Real work goes here. Keep it short (or hand it to a queue): the sender times out
	// slow receivers and retries, which is how duplicates happen.
	rc.state[id] = true
	rc.con.printf("receiver  %-15s %s signature ok, processed %s -> 204", env.Type, id, env.Data)
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) counts() (processed, rejected, duplicates int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.state), rc.rejected, rc.dups
}

// console serialises lines from the receiver's and the sender's goroutines.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}
