package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// attempter makes one attempt: it builds the request for a delivery and its endpoint,
// signs it, sends it and reads the answer. It holds no state of its own between
// attempts and is safe for concurrent use.
type attempter struct {
	transport      http.RoundTripper
	signer         Signer // the default; Endpoint.Signer overrides it
	timeout        time.Duration
	drainBytes     int64
	recordBytes    int
	version        string   // WithVersion
	versionHeader  string   // canonical
	defaultVersion []string // {version}, shared by every request of that version
	userAgent      []string
}

// attemptResult is what one attempt found.
type attemptResult struct {
	attempt Attempt
	// retryAfter is the wait a 429 or 503 asked for (at least MinRetryAfter), 0 if none.
	retryAfter time.Duration
	// err is why no answer came (redacted), or a *signError; nil when the receiver
	// answered, whatever the status.
	err error
}

type signError struct{ err error }

func (e *signError) Error() string { return "signing failed: " + e.err.Error() }
func (e *signError) Unwrap() error { return e.err }

var jsonContentType = []string{"application/json"}

// attemptTimer bounds one worker's attempts by the timeout. Its attempts share one
// cancellable context and one timer, re-armed for each attempt, until an attempt times
// out: the timer then cancels that context, and the next attempt gets a new one. A
// context and a timer of its own for every attempt (context.WithTimeout) cost each
// attempt about ten allocations here and in net/http, which registers with it; see
// docs/performance.md. Only its worker uses it.
type attemptTimer struct {
	parent context.Context // the worker's: Close cancels it
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer // cancels ctx, with context.DeadlineExceeded as the cause
	uses   int
}

// renewEvery bounds how many attempts share a context, so that what a RoundTripper
// leaves registered with it (a derived context it never cancels) is let go of.
const renewEvery = 1024

// begin returns the context of an attempt that must end within d.
func (t *attemptTimer) begin(d time.Duration) context.Context {
	if t.ctx == nil {
		ctx, cancel := context.WithCancelCause(t.parent)
		t.ctx, t.cancel, t.uses = ctx, cancel, 0
		t.timer = time.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	} else {
		t.timer.Reset(d)
	}
	t.uses++
	return t.ctx
}

// end ends the attempt begun last. A timer that already fired spent the context.
func (t *attemptTimer) end() {
	if !t.timer.Stop() || t.uses >= renewEvery {
		t.cancel(context.Canceled)
		t.ctx = nil
	}
}

// do makes the attempt, starting at now (the Sender's clock) and bounded by the timeout
// from the real clock (t, the worker's; its parent context aborts the attempt when Close
// gives up waiting).
func (at *attempter) do(t *attemptTimer, e *endpointEntry, d Delivery, now time.Time) attemptResult {
	r := attemptResult{attempt: Attempt{DeliveryID: d.ID, StartedAt: now}}
	start := time.Now() // durations from the monotonic clock, whatever the Sender's clock
	ctx := t.begin(at.timeout)
	defer t.end() // after the response body is read and closed
	// Header slices shared between requests are never written by net/http.
	h := make(http.Header, len(e.header)+6)
	for k, v := range e.header {
		h[k] = v
	}
	h["Content-Type"] = jsonContentType
	h["User-Agent"] = at.userAgent
	if d.Version == at.version {
		h[at.versionHeader] = at.defaultVersion
	} else {
		h[at.versionHeader] = []string{d.Version}
	}
	signer := e.ep.Signer
	if signer == nil {
		signer = at.signer
	}
	if err := signer.Sign(h, Message{ID: d.EventID, Timestamp: now, Body: d.Body}, e.secrets); err != nil {
		r.err = &signError{err: err}
		r.attempt.Error = r.err.Error()
		return r
	}
	if _, ok := h[canonicalTimestamp]; !ok { // signers other than StandardSigner
		h[canonicalID] = []string{d.EventID}
		h[canonicalTimestamp] = []string{formatUnix(now)}
	}
	body := d.Body
	req := (&http.Request{
		Method: http.MethodPost, URL: e.url, Host: e.url.Host, Header: h,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Body: newRequestBody(body), ContentLength: int64(len(body)),
		// GetBody lets the transport resend on a keep-alive connection the server closed.
		GetBody: func() (io.ReadCloser, error) { return newRequestBody(body), nil },
	}).WithContext(ctx)
	// Straight to the transport: http.Client would only add redirect handling (never
	// wanted: a 3xx is an answer) and copy the headers for it.
	resp, err := at.transport.RoundTrip(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (the attempt timeout is %s)", context.DeadlineExceeded, at.timeout)
		}
		r.err = &url.Error{Op: "Post", URL: e.redacted, Err: err}
		r.attempt.Duration = time.Since(start)
		r.attempt.Error = r.err.Error()
		return r
	}
	r.attempt.StatusCode = resp.StatusCode
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			r.retryAfter = max(ra, MinRetryAfter) // so "0" cannot spin through the attempts
		}
	}
	// A body cut short (by the timeout) does not undo an answer the receiver gave.
	r.attempt.ResponseBody, _ = readResponse(resp.Body, at.drainBytes, at.recordBytes)
	resp.Body.Close()
	r.attempt.Duration = time.Since(start)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		r.attempt.Error = fmt.Sprintf("%s answered HTTP %d", e.redacted, resp.StatusCode)
	}
	return r
}

// newRequestBody reads a request body from bytes. It stays an io.NopCloser around a
// *bytes.Reader, which net/http recognises as in memory: it then writes the headers and
// the body in one write, where another reader type costs a second write (and a second
// segment for the receiver) per attempt.
func newRequestBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// readResponse reads up to drain bytes, so that the connection can be reused, and returns
// a copy of the first record bytes (nil for an empty body). The read buffer is pooled.
func readResponse(body io.Reader, drain int64, record int) ([]byte, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var head []byte
	var read int64
	for read < drain {
		n, err := body.Read(buf[:min(int64(len(buf)), drain-read)])
		if len(head) < record && n > 0 {
			head = append(head, buf[:min(n, record-len(head))]...)
		}
		read += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return head, err
		}
	}
	return head, nil
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}
