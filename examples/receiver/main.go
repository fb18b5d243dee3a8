// Command receiver is a webhook endpoint that checks Standard Webhooks signatures, as
// the receiving side of package webhook (or of any Standard Webhooks sender) should:
//
//	WEBHOOK_SECRET=whsec_... go run ./examples/receiver -addr 127.0.0.1:8080
//
// For each POST it verifies the signature and timestamp (401 if either is wrong), ignores
// a webhook-id it has already processed (answering 204, so the sender stops retrying),
// parses the envelope, processes the event and answers 204. Copy newHandler into your
// service and replace process with your own code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hooksmith/webhook"
)

// maxBodyBytes bounds what a request may make us buffer before its signature is checked.
// Senders cap envelopes at 1 MiB by default (webhook.DefaultMaxPayloadSize).
const maxBodyBytes = 1 << 20

// Bounds of the in-memory record of processed webhook-ids. The window must cover the
// sender's whole retry schedule (about 28 hours for the Standard Webhooks one), since a
// retry after a lost response can come that late with a fresh, valid timestamp.
const (
	seenTTL  = 72 * time.Hour
	seenSize = 100_000
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	secret := flag.String("secret", "", "signing secret (whsec_...); defaults to $WEBHOOK_SECRET")
	flag.Parse()
	if *secret == "" {
		*secret = os.Getenv("WEBHOOK_SECRET")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "receiver: ", log.LstdFlags)
	if err := run(ctx, *addr, *secret, logger); err != nil {
		logger.Print(err)
		stop()
		os.Exit(1)
	}
}

// run serves webhooks on addr until ctx is done, then shuts down gracefully.
func run(ctx context.Context, addr, secret string, logger *log.Logger) error {
	if secret == "" {
		return errors.New("no secret: pass -secret or set WEBHOOK_SECRET to the endpoint's whsec_... secret")
	}
	// During a secret rotation, pass every secret still in use: NewVerifier(current, previous).
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	process := func(_ context.Context, env webhook.Envelope) error {
		logger.Printf("processing %s %s (version %s, at %s): %s", env.Type, env.ID, env.Version,
			env.Timestamp.Format(time.RFC3339), env.Data)
		return nil
	}
	srv := &http.Server{
		Handler:           newHandler(v, process, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Printf("listening on http://%s", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx) // waits for requests in progress
	<-served
	return err
}

// processFunc handles one verified, first-seen event. An error makes the handler answer
// 500 and forget the webhook-id, so the sender's retry is processed again.
type processFunc func(ctx context.Context, env webhook.Envelope) error

// newHandler returns the webhook endpoint: verify, de-duplicate, parse, process, 204.
// It is safe for concurrent use, as net/http requires.
func newHandler(v *webhook.Verifier, process processFunc, logger *log.Logger) http.Handler {
	seen := newIDSet(seenSize, seenTTL, time.Now)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "webhooks are POSTed", http.StatusMethodNotAllowed)
			return
		}
		// Verify the raw bytes, before parsing: JSON re-encoded by a decoder would not
		// match the signature. VerifyRequest also rejects timestamps more than
		// webhook.DefaultTolerance away, so a captured request cannot be replayed later.
		body, err := v.VerifyRequest(r, maxBodyBytes)
		switch {
		case errors.Is(err, webhook.ErrBodyTooLarge):
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			// Say little to the client; the log has the reason.
			logger.Printf("rejected a request from %s: %v", r.RemoteAddr, err)
			http.Error(w, "invalid webhook signature", http.StatusUnauthorized)
			return
		}
		var env webhook.Envelope
		if err := json.Unmarshal(body, &env); err != nil {
			// Signed by the sender but not an envelope: a retry would not fix it, and a
			// 4xx other than 408/429 tells the sender to stop.
			http.Error(w, "body is not a webhook envelope", http.StatusBadRequest)
			return
		}

		// The webhook-id is the idempotency key: the same on every retry of an event.
		// The header is covered by the signature, like the body.
		id := r.Header.Get(webhook.HeaderID)
		switch seen.begin(id) {
		case idDone:
			logger.Printf("duplicate %s %s: already processed", env.Type, id)
			w.WriteHeader(http.StatusNoContent) // acknowledge, or the sender keeps retrying
			return
		case idInProgress:
			// A retry raced the first request, which may still fail: ask for another try.
			w.Header().Set("Retry-After", "5")
			http.Error(w, "already in progress", http.StatusServiceUnavailable)
			return
		}
		if err := process(r.Context(), env); err != nil {
			seen.forget(id)
			logger.Printf("processing %s %s failed: %v", env.Type, id, err)
			http.Error(w, "processing failed", http.StatusInternalServerError) // retried
			return
		}
		seen.done(id)
		w.WriteHeader(http.StatusNoContent)
	})
}

// idState is what an idSet knows of a webhook-id.
type idState int

const (
	idNew idState = iota
	idInProgress
	idDone
)

// idSet remembers recent webhook-ids: at most size of them, each for ttl. It is safe for
// concurrent use.
//
// It is in memory, so it forgets on restart and is not shared between replicas. In
// production record the id in your database instead, in the same transaction as the
// event's effects, under a unique constraint (INSERT ... ON CONFLICT DO NOTHING): then an
// event is processed once however many replicas receive it, and the table can be pruned
// once rows are older than the sender's retry window.
type idSet struct {
	mu    sync.Mutex
	size  int
	ttl   time.Duration
	now   func() time.Time
	byID  map[string]*seenID
	order []*seenID // oldest first; may hold entries already forgotten
}

type seenID struct {
	id    string
	at    time.Time
	state idState
}

func newIDSet(size int, ttl time.Duration, now func() time.Time) *idSet {
	return &idSet{size: size, ttl: ttl, now: now, byID: make(map[string]*seenID)}
}

// begin returns what is known of id; for a new id it records it as in progress.
func (s *idSet) begin(id string) idState {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	// Expired and surplus ids go first, so the set never holds more than size.
	for len(s.order) > 0 && (len(s.order) >= s.size || now.Sub(s.order[0].at) >= s.ttl) {
		e := s.order[0]
		s.order[0] = nil
		s.order = s.order[1:]
		if s.byID[e.id] == e {
			delete(s.byID, e.id)
		}
	}
	if e, ok := s.byID[id]; ok {
		return e.state
	}
	e := &seenID{id: id, at: now, state: idInProgress}
	s.byID[id] = e
	s.order = append(s.order, e)
	return idNew
}

// done marks id processed.
func (s *idSet) done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byID[id]; ok {
		e.state = idDone
	}
}

// forget drops id, so that the next request with it is processed.
func (s *idSet) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}
