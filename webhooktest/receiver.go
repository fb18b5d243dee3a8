package webhooktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hooksmith/webhook"
)

// DefaultReceiverStatus is what a Receiver answers to a verified request when no script
// is set: 204 No Content.
const DefaultReceiverStatus = http.StatusNoContent

// Delivery is one request a Receiver received, with what it made of it.
type Delivery struct {
	Request
	// Verified reports that the request passed the receiver's signature check. A receiver
	// from NewUnverifiedReceiver checks nothing and marks every complete request Verified.
	Verified bool
	// VerifyErr is why the request was rejected, nil when Verified. It wraps the
	// webhook.Verifier error (webhook.ErrNoMatchingSignature, webhook.ErrTimestampTooOld,
	// ...) or webhook.ErrBodyTooLarge.
	VerifyErr error
	// Envelope is the body parsed as a webhook.Envelope; zero when the body is not one.
	Envelope webhook.Envelope
	// Status is the status the receiver chose to answer with: 401 for a bad signature,
	// 413 for a body over webhook.DefaultMaxBodyBytes, otherwise the scripted status.
	// It is 0 when the script hung up.
	Status int
}

// Receiver is a webhook endpoint for tests: a real HTTP server on a loopback address
// (an httptest.Server) that verifies Standard Webhooks signatures, records every request
// and answers as scripted. Point the code under test at URL.
//
// A request is handled in this order: its body is read, up to webhook.DefaultMaxBodyBytes
// (larger ones are answered 413); its signature is checked, and a request that fails is
// answered 401 with the reason as body; only then is the next scripted Response played.
// Unscripted, the receiver answers DefaultReceiverStatus. Every request is recorded,
// rejected ones included, as soon as it has been read and checked, before any scripted
// Delay.
//
// A Receiver is safe for concurrent use by any number of goroutines.
type Receiver struct {
	// URL is the server's base URL, of the form http://127.0.0.1:port, with no trailing
	// slash. Requests to any path under it are received alike.
	URL string

	srv       *httptest.Server
	verifier  *webhook.Verifier // nil for an unverified receiver
	closing   chan struct{}     // closed by Close, to end scripted delays
	closeOnce sync.Once

	mu         sync.Mutex
	script     script
	deliveries []Delivery
	received   waiter // signalled on every recorded delivery
}

// NewReceiver starts a Receiver that accepts requests signed with any of secrets (whsec_
// secrets, whpk_ public keys or whsk_ private keys, as for webhook.NewVerifier) and rejects
// the rest with 401. It calls t.Fatal if no secret is given or one is invalid, and
// registers Close with t.Cleanup.
//
// The verifier uses the system clock and webhook.DefaultTolerance; see Verifier to change
// them.
func NewReceiver(t testing.TB, secrets ...string) *Receiver {
	t.Helper()
	v, err := webhook.NewVerifier(secrets...)
	if err != nil {
		t.Fatalf("webhooktest: NewReceiver: %v", err)
		return nil
	}
	return startReceiver(t, v)
}

// NewUnverifiedReceiver starts a Receiver that checks no signature: every request it can
// read is accepted and recorded as Verified, and the test checks the headers itself. Use
// it for signing schemes webhook.Verifier does not know, such as webhook.HexSigner's.
// It registers Close with t.Cleanup.
func NewUnverifiedReceiver(t testing.TB) *Receiver {
	t.Helper()
	return startReceiver(t, nil)
}

func startReceiver(t testing.TB, v *webhook.Verifier) *Receiver {
	r := &Receiver{verifier: v, closing: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	r.URL = r.srv.URL
	t.Cleanup(r.Close)
	return r
}

// Verifier returns the webhook.Verifier the receiver checks requests with, or nil for a
// receiver from NewUnverifiedReceiver. Set its Now or Tolerance before the first request
// is sent, for example to follow a fake Clock:
//
//	r.Verifier().Now = clock.Now
//
// Changing them while requests are in flight is a data race.
func (r *Receiver) Verifier() *webhook.Verifier { return r.verifier }

// Client returns an http.Client configured for requests to the receiver. Its idle
// connections are closed by Close.
func (r *Receiver) Client() *http.Client { return r.srv.Client() }

// Close hangs up on requests held by a scripted Delay, shuts the server down and waits for
// outstanding requests to finish. It is safe to call more than once; NewReceiver has
// already registered it with t.Cleanup.
func (r *Receiver) Close() {
	r.closeOnce.Do(func() { close(r.closing) })
	r.srv.Close()
}

// Script sets the responses to verified requests: the first gets responses[0], the next
// responses[1], and once the script is used up the last response repeats. Rejected
// requests do not advance it. Calling Script again replaces the script and starts it over;
// calling it with no responses restores the default, DefaultReceiverStatus. Script panics
// if a response has a Status other than 0 or 200 to 999, or a negative Delay.
func (r *Receiver) Script(responses ...Response) {
	mustValidate("Receiver.Script", responses...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = script{responses: append([]Response(nil), responses...)}
}

// Deliveries returns a copy of every recorded delivery, rejected ones included, in the
// order they were received.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...)
}

// Verified returns a copy of the deliveries that passed the signature check, in the order
// they were received.
func (r *Receiver) Verified() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Delivery
	for _, d := range r.deliveries {
		if d.Verified {
			out = append(out, d)
		}
	}
	return out
}

// Wait blocks until at least n requests, verified or not, have been received. It returns
// ctx.Err() if ctx ends first; give it a deadline so a test whose request never comes
// fails instead of hanging.
func (r *Receiver) Wait(ctx context.Context, n int) error {
	return waitUntil(ctx, &r.mu, &r.received, func() bool { return len(r.deliveries) >= n })
}

// WaitVerified is Wait counting only verified deliveries.
func (r *Receiver) WaitVerified(ctx context.Context, n int) error {
	return waitUntil(ctx, &r.mu, &r.received, func() bool { return r.countVerifiedLocked() >= n })
}

// UniqueIDs returns the number of distinct webhook-id header values among verified
// deliveries. Deliveries without the header are not counted.
func (r *Receiver) UniqueIDs() int {
	unique, _ := r.idCounts()
	return unique
}

// Duplicates returns how many verified deliveries repeated the webhook-id of an earlier
// one: zero when every event arrived once, as at-least-once delivery allows but does not
// promise. Deliveries without the header are not counted.
func (r *Receiver) Duplicates() int {
	_, dups := r.idCounts()
	return dups
}

func (r *Receiver) idCounts() (unique, duplicates int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool)
	for _, d := range r.deliveries {
		id := d.Header.Get(webhook.HeaderID)
		if !d.Verified || id == "" {
			continue
		}
		if seen[id] {
			duplicates++
			continue
		}
		seen[id] = true
	}
	return len(seen), duplicates
}

func (r *Receiver) countVerifiedLocked() int {
	n := 0
	for _, d := range r.deliveries {
		if d.Verified {
			n++
		}
	}
	return n
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	d := Delivery{Request: Request{
		Method: req.Method,
		URL:    "http://" + req.Host + req.URL.RequestURI(),
		Header: req.Header.Clone(),
		At:     time.Now(),
	}}
	const limit = webhook.DefaultMaxBodyBytes
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	switch {
	case err != nil:
		// The client went away mid-body; nobody is left to answer.
		d.VerifyErr = fmt.Errorf("webhooktest: reading request body: %w", err)
		d.Status = http.StatusBadRequest
	case len(body) > limit:
		body = body[:limit]
		d.VerifyErr = fmt.Errorf("%w: more than %d bytes", webhook.ErrBodyTooLarge, limit)
		d.Status = http.StatusRequestEntityTooLarge
	case r.verifier != nil:
		if err := r.verifier.Verify(req.Header, body); err != nil {
			d.VerifyErr = err
			d.Status = http.StatusUnauthorized
		}
	}
	if len(body) > 0 {
		d.Body = body
		var env webhook.Envelope
		if json.Unmarshal(body, &env) == nil {
			d.Envelope = env
		}
	}
	d.Verified = d.VerifyErr == nil

	resp := Response{Status: DefaultReceiverStatus}
	r.mu.Lock()
	if d.Verified && len(r.script.responses) > 0 {
		resp = r.script.take()
	}
	if d.Verified {
		d.Status = 0
		if !resp.failed() {
			d.Status = resp.status()
		}
	}
	r.deliveries = append(r.deliveries, d)
	r.received.signal()
	r.mu.Unlock()

	if !d.Verified {
		http.Error(w, d.VerifyErr.Error(), d.Status)
		return
	}
	if err := delay(req.Context(), resp.Delay, r.closing); err != nil {
		if errors.Is(err, errStopped) {
			hangup(w)
		}
		return
	}
	if resp.failed() {
		hangup(w)
		return
	}
	for k, vs := range resp.Header {
		w.Header()[k] = append([]string(nil), vs...)
	}
	w.WriteHeader(resp.status())
	_, _ = io.WriteString(w, resp.Body)
}

// hangup closes the connection without writing a response.
func hangup(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	// Not HTTP/1: abort the handler; the server then resets the stream without logging.
	panic(http.ErrAbortHandler)
}
