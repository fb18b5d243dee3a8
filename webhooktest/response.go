package webhooktest

import (
	"fmt"
	"net/http"
	"time"
)

// Response is one scripted outcome of a request, played by a Transport or a Receiver.
// The zero Response answers 200 OK with no headers and an empty body.
//
// A Response is a value; its methods return modified copies and never change the
// receiver, so one Response can be reused in many scripts.
type Response struct {
	// Status is the HTTP status code. Zero means 200 OK, as with http.ResponseWriter;
	// otherwise it must be 200 to 999.
	Status int
	// Header is sent with the response. Nil means no extra headers.
	Header http.Header
	// Body is the response body. Empty means none.
	Body string
	// Err, when set, makes the request fail instead of being answered: Transport.RoundTrip
	// returns Err itself; a Receiver, which cannot send an error over the wire, hangs up
	// as for Hangup.
	Err error
	// Hangup closes the connection without answering, as a crashed or overloaded receiver
	// does. A Receiver closes its side of the connection, so the client sees an error such
	// as EOF; a Transport returns io.EOF, as net/http does in that case. Err, when also
	// set, takes precedence in a Transport.
	Hangup bool
	// Delay is how long the answer (or failure) is held back. The wait ends early when the
	// request's context is done: a Transport then returns the context's error, and a
	// Receiver gives up on the request. Zero means no delay.
	Delay time.Duration
}

// Status returns a Response that answers with the status code and an empty body.
func Status(code int) Response { return Response{Status: code} }

// Fail returns a Response that fails the request with err, which must not be nil. A
// Transport returns err from RoundTrip; a Receiver hangs up instead.
func Fail(err error) Response {
	if err == nil {
		panic("webhooktest: Fail needs a non-nil error; use Status(200) for a success")
	}
	return Response{Err: err}
}

// Hangup returns a Response that closes the connection without answering.
func Hangup() Response { return Response{Hangup: true} }

// WithHeader returns a copy of r whose header key is set to value, replacing any earlier
// value of key.
func (r Response) WithHeader(key, value string) Response {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(key, value)
	r.Header = h
	return r
}

// WithBody returns a copy of r with the given body.
func (r Response) WithBody(body string) Response {
	r.Body = body
	return r
}

// WithDelay returns a copy of r held back by d (see Response.Delay).
func (r Response) WithDelay(d time.Duration) Response {
	r.Delay = d
	return r
}

// failed reports whether r makes the request fail rather than be answered.
func (r Response) failed() bool { return r.Err != nil || r.Hangup }

// status returns the code to answer with, mapping zero to 200.
func (r Response) status() int {
	if r.Status == 0 {
		return http.StatusOK
	}
	return r.Status
}

// mustValidate panics when a response cannot be played; called where scripts are set, so
// the mistake points at the test line that made it.
func mustValidate(caller string, rs ...Response) {
	for i, r := range rs {
		if r.Status != 0 && (r.Status < 200 || r.Status > 999) {
			panic(fmt.Sprintf("webhooktest: %s: response %d: Status %d is not a final HTTP status; use 200 to 999, or 0 for 200", caller, i, r.Status))
		}
		if r.Delay < 0 {
			panic(fmt.Sprintf("webhooktest: %s: response %d: Delay %s is negative; use 0 for none", caller, i, r.Delay))
		}
	}
}

// script plays responses in order and then repeats the last one.
type script struct {
	responses []Response
	next      int
}

// take returns the next response. The script must not be empty.
func (s *script) take() Response {
	r := s.responses[s.next]
	if s.next < len(s.responses)-1 {
		s.next++
	}
	return r
}
