package webhooktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

var _ http.RoundTripper = (*Transport)(nil)

// Request is one request as a Transport or Receiver saw it.
type Request struct {
	// Method is the HTTP method, such as "POST".
	Method string
	// URL is the full request URL, query included.
	URL string
	// Header is a copy of the request's header.
	Header http.Header
	// Body is the whole request body; nil when the request had none.
	Body []byte
	// At is when the request arrived, by the system clock (time.Now).
	At time.Time
}

// Transport is an in-memory http.RoundTripper for tests: it records every request and
// answers with responses scripted per URL, so code that sends webhooks can be tested
// without a network. Plug it into the code under test as its transport, or use Client.
//
// URLs are matched on scheme, host and path only: the query, fragment and user info are
// ignored, scheme and host compare case-insensitively, and an empty path equals "/".
// A URL without a script gets the default response, 200 OK with an empty body unless
// changed by SetDefault.
//
// The zero Transport is ready to use. A Transport is safe for concurrent use by any number
// of goroutines.
type Transport struct {
	mu       sync.Mutex
	fallback Response
	scripts  map[string]*script // by urlKey
	requests []Request
	recorded waiter // signalled on every recorded request
}

// NewTransport returns a Transport with no scripts that answers every request with 200 OK
// and an empty body.
func NewTransport() *Transport { return &Transport{} }

// Client returns an http.Client that sends through t and follows no redirects, so a
// scripted 3xx reaches the test as it is.
func (t *Transport) Client() *http.Client {
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// SetDefault sets the response for URLs without a script. It panics if r is invalid (a
// Status other than 0 or 200 to 999, or a negative Delay).
func (t *Transport) SetDefault(r Response) {
	mustValidate("Transport.SetDefault", r)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fallback = r
}

// Script sets the responses to requests for rawURL: the first request gets responses[0],
// the next responses[1], and once the script is used up the last response repeats.
// Calling Script again for the same URL replaces its script and starts it over; calling it
// with no responses removes the script, so the URL gets the default response again.
// Script panics if rawURL does not parse or a response is invalid (see SetDefault).
func (t *Transport) Script(rawURL string, responses ...Response) {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("webhooktest: Transport.Script: %v", err))
	}
	mustValidate("Transport.Script", responses...)
	key := urlKey(u)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(responses) == 0 {
		delete(t.scripts, key)
		return
	}
	if t.scripts == nil {
		t.scripts = make(map[string]*script)
	}
	t.scripts[key] = &script{responses: append([]Response(nil), responses...)}
}

// RoundTrip implements http.RoundTripper. It reads and closes the request body, records
// the request and plays the next scripted response for its URL. A request whose context is
// already done when RoundTrip is called fails with the context's error and is neither
// recorded nor counted against the script, as it would never have left a real client.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("webhooktest: reading request body: %w", err)
		}
		body = b
	}
	if req.URL == nil {
		return nil, errors.New("webhooktest: request has no URL; build it with http.NewRequest")
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	header := req.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	rec := Request{Method: req.Method, URL: req.URL.String(), Header: header, Body: body, At: time.Now()}
	if rec.Method == "" {
		rec.Method = http.MethodGet
	}

	t.mu.Lock()
	resp := t.fallback
	if s := t.scripts[urlKey(req.URL)]; s != nil {
		resp = s.take()
	}
	t.requests = append(t.requests, rec)
	t.recorded.signal()
	t.mu.Unlock()

	if err := delay(ctx, resp.Delay, nil); err != nil {
		return nil, err
	}
	switch {
	case resp.Err != nil:
		return nil, resp.Err
	case resp.Hangup:
		return nil, io.EOF
	}
	code := resp.status()
	rh := resp.Header.Clone()
	if rh == nil {
		rh = http.Header{}
	}
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rh,
		Body:          io.NopCloser(strings.NewReader(resp.Body)),
		ContentLength: int64(len(resp.Body)),
		Request:       req,
	}, nil
}

// Requests returns a copy of the recorded requests, oldest first.
func (t *Transport) Requests() []Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Request(nil), t.requests...)
}

// RequestsTo returns the recorded requests for rawURL, oldest first, matching URLs as
// Script does. A rawURL that does not parse matches nothing.
func (t *Transport) RequestsTo(rawURL string) []Request {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	key := urlKey(u)
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Request
	for _, r := range t.requests {
		if ru, err := url.Parse(r.URL); err == nil && urlKey(ru) == key {
			out = append(out, r)
		}
	}
	return out
}

// Len returns the number of recorded requests.
func (t *Transport) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.requests)
}

// Reset forgets the recorded requests. Scripts, their positions and the default response
// are kept.
func (t *Transport) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.requests = nil
}

// Wait blocks until at least n requests have been recorded since the Transport was made or
// last Reset. It returns ctx.Err() if ctx ends first; give it a deadline so a test whose
// request never comes fails instead of hanging.
func (t *Transport) Wait(ctx context.Context, n int) error {
	return waitUntil(ctx, &t.mu, &t.recorded, func() bool { return len(t.requests) >= n })
}

// urlKey is what scripts are matched on: scheme://host/path, without query or user info.
func urlKey(u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + path
}

// delay waits d, or until ctx is done (returning its error) or stop is closed (returning
// errStopped). A zero d returns at once.
func delay(ctx context.Context, d time.Duration, stop <-chan struct{}) error {
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return errStopped
	}
}

var errStopped = errors.New("webhooktest: receiver closed")
