package webhook_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hooksmith/webhook"
)

var loopback = webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))

// rawServer accepts connections on loopback and hands each to serve; it is closed with
// the test.
func rawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// readRequest consumes one request from c so the client is not cut off mid-send.
func readRequest(c net.Conn) {
	r, err := http.ReadRequest(bufio.NewReader(c))
	if err == nil {
		_, _ = io.Copy(io.Discard, r.Body)
	}
}

// TestFaultMatrix sends one event to each kind of misbehaving receiver, on real loopback
// sockets, and checks the documented outcome of the first attempt and that nothing is
// lost or retried that should not be. Every case runs with a recognisable secret and a URL
// carrying credentials and a query, none of which may reach a log line, an error or a
// recorded attempt.
func TestFaultMatrix(t *testing.T) {
	// Long enough for a TLS handshake under -race on a loaded machine (300 ms was not);
	// the cases that hang wait this long.
	const timeout = 2 * time.Second
	type outcome struct {
		verdict webhook.Verdict
		state   webhook.State
		errHas  string
		pause   time.Duration // the Retry-After pause expected, if any
	}
	cases := []struct {
		name  string
		start func(t *testing.T) string // returns the base URL
		opts  []webhook.Option
		want  outcome
	}{
		{"500 then 200", func(t *testing.T) string {
			var n atomic.Int32
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.WriteHeader(500)
				}
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "HTTP 500", 0}},
		{"connection reset", func(t *testing.T) string {
			return rawServer(t, func(c net.Conn) {
				readRequest(c)
				_ = c.(*net.TCPConn).SetLinger(0) // RST instead of FIN
				c.Close()
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "connection reset", 0}},
		{"hang past the timeout", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		}, nil, outcome{webhook.Retry, webhook.StatePending, "deadline exceeded", 0}},
		{"slow body trickling", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(500)
				for {
					if _, err := w.Write([]byte("x")); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "HTTP 500", 0}},
		{"endless body", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(200)
				chunk := []byte(strings.Repeat("y", 32<<10))
				for {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			})
		}, nil, outcome{webhook.Delivered, webhook.StateSucceeded, "", 0}},
		{"3xx redirect", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://169.254.169.254/", http.StatusTemporaryRedirect)
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "HTTP 307", 0}},
		{"410 gone", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(410) })
		}, nil, outcome{webhook.Gone, webhook.StateFailed, "HTTP 410", 0}},
		{"429 retry-after seconds", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "42")
				w.WriteHeader(429)
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "HTTP 429", 42 * time.Second}},
		{"503 retry-after date", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", time.Now().Add(2*time.Hour).UTC().Format(http.TimeFormat))
				w.WriteHeader(503)
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "HTTP 503", time.Hour}}, // clamped
		{"429 absurd retry-after", func(t *testing.T) string {
			return httpServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "9999999999999")
				w.WriteHeader(429)
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "HTTP 429", webhook.DefaultMaxRetryAfter}},
		{"invalid status line", func(t *testing.T) string {
			return rawServer(t, func(c net.Conn) {
				readRequest(c)
				_, _ = c.Write([]byte("HTTP/1.1 two-hundred OK\r\n\r\n"))
				c.Close()
			})
		}, nil, outcome{webhook.Retry, webhook.StatePending, "malformed HTTP status code", 0}},
		{"TLS failure", func(t *testing.T) string {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.Config.ErrorLog = nullLogger()
			t.Cleanup(srv.Close)
			return srv.URL
		}, nil, outcome{webhook.Retry, webhook.StatePending, "certificate", 0}},
		{"DNS failure", func(t *testing.T) string {
			return "http://no-such-host.invalid"
		}, []webhook.Option{webhook.WithTransport(localOnlyResolverTransport())},
			outcome{webhook.Retry, webhook.StatePending, "no-such-host.invalid", 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.start(t)
			secret := webhook.NewSecret()
			rawURL := strings.Replace(base, "://", "://alice:pa55w0rd-leak@", 1) + "/hook?token=query-leak"
			core, logs := observer.New(zap.DebugLevel)
			rep := newReports()
			sched := webhook.FixedSchedule{time.Hour} // no second attempt within the test
			opts := append([]webhook.Option{rep.hooks(), loopback, webhook.WithLogger(zap.New(core)),
				webhook.WithTimeout(timeout), webhook.WithLeaseDuration(10 * time.Second),
				webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: rawURL, Secret: secret}),
				webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: sched})}, tc.opts...)
			s := newSender(t, opts...)
			ctx := testCtx(t)
			ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
			require.NoError(t, err)
			a := rep.next(t)
			assert.Equal(t, tc.want.verdict, a.Verdict, a.Attempt.Error)
			assert.Equal(t, tc.want.state, a.Delivery.State)
			assert.Contains(t, a.Attempt.Error, tc.want.errHas)
			assert.LessOrEqual(t, a.Attempt.Duration, timeout+time.Second, "one timeout at most")
			// The result is recorded, and a retry scheduled, from the attempt's end.
			assert.False(t, a.Delivery.UpdatedAt.Before(a.Attempt.StartedAt.Add(a.Attempt.Duration)),
				"recorded at %v, before the attempt's end (%v + %v)", a.Delivery.UpdatedAt, a.Attempt.StartedAt, a.Attempt.Duration)
			assert.LessOrEqual(t, len(a.Attempt.ResponseBody), webhook.DefaultResponseRecordBytes)
			h, err := s.EndpointHealth("ep")
			require.NoError(t, err)
			switch {
			case tc.want.pause > 0:
				// The endpoint is paused; the delivery keeps its place in line.
				assert.InDelta(t, tc.want.pause.Seconds(), h.PausedUntil.Sub(a.Delivery.UpdatedAt).Seconds(), 2, "pause")
				assert.Equal(t, a.Delivery.CreatedAt, a.Delivery.NextAttemptAt)
			case tc.want.state == webhook.StatePending:
				assert.Zero(t, h.PausedUntil)
				got := a.Delivery.NextAttemptAt.Sub(a.Delivery.UpdatedAt)
				assert.InDelta(t, time.Hour.Seconds(), got.Seconds(), 2, "retry delay")
			}
			// Nothing lost: the delivery is in the store in the state reported.
			d, err := s.Delivery(ctx, ids[0])
			require.NoError(t, err)
			assert.Equal(t, tc.want.state, d.State)
			attempts, err := s.Attempts(ctx, ids[0])
			require.NoError(t, err)
			require.Len(t, attempts, 1, "exactly one attempt so far")

			texts := []string{a.Attempt.Error, d.LastError, string(a.Attempt.ResponseBody)}
			for _, e := range logs.All() {
				texts = append(texts, e.Message)
				for k, v := range e.ContextMap() {
					texts = append(texts, k+"="+fmt.Sprint(v))
				}
			}
			for _, text := range texts {
				for _, leak := range []string{secret, secret[6:], "pa55w0rd-leak", "query-leak", "alice"} {
					assert.NotContains(t, text, leak)
				}
			}
		})
	}
}

func httpServer(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h(w, r)
	}))
	srv.Config.ErrorLog = nullLogger()
	t.Cleanup(srv.Close)
	return srv.URL
}

// localOnlyResolverTransport resolves names through a "DNS server" on a closed loopback
// port, so a lookup fails at once without sending anything off this machine.
func localOnlyResolverTransport() http.RoundTripper {
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", "127.0.0.1:1")
	}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Resolver: resolver}).DialContext
	return tr
}

// TestAWorkerRecoversFromATimeout runs a timed-out attempt and then two more on the same
// worker, over HTTP/1.1 (the Sender's own transport) and HTTP/2: the timeout cancels
// the request it bounds and no other, whichever protocol carries it (a worker's attempts
// share a context until one times out).
func TestAWorkerRecoversFromATimeout(t *testing.T) {
	for _, proto := range []int{1, 2} {
		t.Run(fmt.Sprintf("HTTP/%d", proto), func(t *testing.T) {
			var n atomic.Int32
			protos := make(chan int, 4)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				protos <- r.ProtoMajor
				if n.Add(1) == 1 {
					<-r.Context().Done() // held until the client gives up
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			srv.Config.ErrorLog = nullLogger()
			opts := []webhook.Option{loopback}
			if proto == 2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				opts = append(opts, webhook.WithTransport(srv.Client().Transport))
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			rep := newReports()
			s := newSender(t, append(opts, rep.hooks(), webhook.WithWorkers(1),
				webhook.WithTimeout(200*time.Millisecond), webhook.WithLeaseDuration(10*time.Second),
				webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: srv.URL, Secret: webhook.NewSecret()}),
				webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}, MaxAttempts: 2}))...)
			ctx := testCtx(t)
			_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
			require.NoError(t, err)

			a := rep.next(t)
			assert.Equal(t, webhook.Retry, a.Verdict)
			assert.Contains(t, a.Attempt.Error, "deadline exceeded")
			a = rep.next(t)
			assert.Equal(t, webhook.StateSucceeded, a.Delivery.State, a.Attempt.Error)
			_, err = s.Send(ctx, webhook.Event{Type: "a.b"})
			require.NoError(t, err)
			a = rep.next(t)
			assert.Equal(t, webhook.StateSucceeded, a.Delivery.State, a.Attempt.Error)
			require.Len(t, protos, 3, "each attempt reached the receiver")
			for range 3 {
				assert.Equal(t, proto, <-protos)
			}
		})
	}
}
