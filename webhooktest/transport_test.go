package webhooktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook/webhooktest"
)

const hookURL = "https://example.com/hook"

// send posts body to url through rt and returns the status and response body.
func send(ctx context.Context, rt http.RoundTripper, url, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestTransportScripts(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*webhooktest.Transport)
		url    string
		want   []int
		bodies []string // expected response bodies, when checked
	}{
		{
			name:   "unscripted URL gets 200 with empty body",
			setup:  func(*webhooktest.Transport) {},
			url:    hookURL,
			want:   []int{200, 200},
			bodies: []string{"", ""},
		},
		{
			name: "script plays in order and repeats the last",
			setup: func(tr *webhooktest.Transport) {
				tr.Script(hookURL, webhooktest.Status(500), webhooktest.Status(503), webhooktest.Status(201))
			},
			url:  hookURL,
			want: []int{500, 503, 201, 201, 201},
		},
		{
			name:   "zero Status means 200",
			setup:  func(tr *webhooktest.Transport) { tr.Script(hookURL, webhooktest.Response{Body: "ok"}) },
			url:    hookURL,
			want:   []int{200},
			bodies: []string{"ok"},
		},
		{
			name:  "query, fragment and user info are ignored, scheme and host case are not significant",
			setup: func(tr *webhooktest.Transport) { tr.Script(hookURL+"?a=1", webhooktest.Status(410)) },
			url:   "HTTPS://user:pw@Example.COM/hook?b=2#frag",
			want:  []int{410},
		},
		{
			name:  "empty path equals slash",
			setup: func(tr *webhooktest.Transport) { tr.Script("http://example.com", webhooktest.Status(202)) },
			url:   "http://example.com/",
			want:  []int{202},
		},
		{
			name:  "other paths get the default",
			setup: func(tr *webhooktest.Transport) { tr.Script(hookURL, webhooktest.Status(500)) },
			url:   hookURL + "/other",
			want:  []int{200},
		},
		{
			name: "SetDefault changes unscripted answers",
			setup: func(tr *webhooktest.Transport) {
				tr.SetDefault(webhooktest.Status(http.StatusTeapot).WithBody("short and stout"))
			},
			url:    hookURL,
			want:   []int{418, 418},
			bodies: []string{"short and stout", "short and stout"},
		},
		{
			name: "Script again replaces and restarts",
			setup: func(tr *webhooktest.Transport) {
				tr.Script(hookURL, webhooktest.Status(500))
				tr.Script(hookURL, webhooktest.Status(429), webhooktest.Status(204))
			},
			url:  hookURL,
			want: []int{429, 204, 204},
		},
		{
			name: "Script with no responses removes the script",
			setup: func(tr *webhooktest.Transport) {
				tr.Script(hookURL, webhooktest.Status(500))
				tr.Script(hookURL)
			},
			url:  hookURL,
			want: []int{200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := webhooktest.NewTransport()
			tt.setup(tr)
			for i, want := range tt.want {
				code, body, err := send(t.Context(), tr, tt.url, "{}")
				require.NoError(t, err, "request %d", i)
				assert.Equal(t, want, code, "request %d", i)
				if tt.bodies != nil {
					assert.Equal(t, tt.bodies[i], body, "request %d", i)
				}
			}
			assert.Equal(t, len(tt.want), tr.Len())
		})
	}
}

func TestTransportResponseFields(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script(hookURL, webhooktest.Status(http.StatusServiceUnavailable).
		WithHeader("Retry-After", "30").
		WithHeader("Content-Type", "text/plain").
		WithBody("busy"))

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hookURL, strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()

	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, "503 Service Unavailable", resp.Status)
	assert.Equal(t, "HTTP/1.1", resp.Proto)
	assert.True(t, resp.ProtoAtLeast(1, 1))
	assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	assert.Equal(t, "text/plain", resp.Header.Get("Content-Type"))
	assert.Equal(t, int64(4), resp.ContentLength)
	assert.Same(t, req, resp.Request)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "busy", string(b))

	// The caller owns the response's header: changing it leaves the script alone.
	resp.Header.Set("Retry-After", "changed")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp2, err := tr.RoundTrip(req.Clone(t.Context()))
	require.NoError(t, err)
	defer resp2.Body.Close()
	assert.Equal(t, "30", resp2.Header.Get("Retry-After"))
}

func TestResponseHelpersDoNotAlias(t *testing.T) {
	base := webhooktest.Status(200).WithHeader("A", "1")
	derived := base.WithHeader("A", "2").WithHeader("B", "3").WithBody("x").WithDelay(time.Second)

	assert.Equal(t, "1", base.Header.Get("A"))
	assert.Empty(t, base.Header.Get("B"))
	assert.Empty(t, base.Body)
	assert.Zero(t, base.Delay)
	assert.Equal(t, "2", derived.Header.Get("A"))
	assert.Equal(t, "3", derived.Header.Get("B"))
	assert.Equal(t, "x", derived.Body)
	assert.Equal(t, time.Second, derived.Delay)
}

func TestTransportFailures(t *testing.T) {
	errRefused := errors.New("connection refused")
	tests := []struct {
		name    string
		resp    webhooktest.Response
		wantErr error
	}{
		{"Fail returns the error", webhooktest.Fail(errRefused), errRefused},
		{"Hangup returns io.EOF", webhooktest.Hangup(), io.EOF},
		{"Err wins over Hangup", webhooktest.Response{Err: errRefused, Hangup: true}, errRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := webhooktest.NewTransport()
			tr.Script(hookURL, tt.resp)

			// Through an http.Client, as code under test would use it.
			resp, err := tr.Client().Post(hookURL, "application/json", strings.NewReader("{}"))
			if resp != nil {
				resp.Body.Close()
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, 1, tr.Len(), "a failed request is still recorded")
		})
	}
}

func TestTransportClientDoesNotFollowRedirects(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script(hookURL, webhooktest.Status(http.StatusFound).WithHeader("Location", "https://elsewhere.example/"))
	resp, err := tr.Client().Post(hookURL, "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, 1, tr.Len())
}

func TestTransportScriptPanicsOnInvalidResponse(t *testing.T) {
	tr := webhooktest.NewTransport()
	assert.PanicsWithValue(t,
		"webhooktest: Transport.Script: response 1: Status 42 is not a final HTTP status; use 200 to 999, or 0 for 200",
		func() { tr.Script(hookURL, webhooktest.Status(200), webhooktest.Status(42)) })
	assert.Panics(t, func() { tr.SetDefault(webhooktest.Status(100)) })
	assert.Panics(t, func() { tr.Script(hookURL, webhooktest.Status(200).WithDelay(-time.Second)) })
	assert.Panics(t, func() { tr.Script("http://[::1", webhooktest.Status(200)) })
	assert.Panics(t, func() { webhooktest.Fail(nil) })
}

// closeRecorder is a request body that remembers being closed.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestTransportRecordsRequests(t *testing.T) {
	tr := webhooktest.NewTransport()
	body := &closeRecorder{Reader: strings.NewReader(`{"id":"msg_1"}`)}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hookURL+"?token=x", body)
	require.NoError(t, err)
	req.Header.Set("Webhook-Id", "msg_1")
	req.Header.Set("Content-Type", "application/json")

	before := time.Now()
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.True(t, body.closed.Load(), "RoundTrip closes the request body")

	req.Header.Set("Webhook-Id", "changed after sending")

	get, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://other.example/health", nil)
	require.NoError(t, err)
	resp, err = tr.RoundTrip(get)
	require.NoError(t, err)
	resp.Body.Close()

	reqs := tr.Requests()
	require.Len(t, reqs, 2)
	got := reqs[0]
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, hookURL+"?token=x", got.URL)
	assert.Equal(t, "msg_1", got.Header.Get("Webhook-Id"), "the header is a copy taken at send time")
	assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
	assert.Equal(t, []byte(`{"id":"msg_1"}`), got.Body)
	assert.False(t, got.At.Before(before))
	assert.Equal(t, http.MethodGet, reqs[1].Method)
	assert.Nil(t, reqs[1].Body)
	assert.NotNil(t, reqs[1].Header)

	reqs[0].Method = "mutated"
	assert.Equal(t, http.MethodPost, tr.Requests()[0].Method, "Requests returns a copy")

	to := tr.RequestsTo(hookURL)
	require.Len(t, to, 1)
	assert.Equal(t, hookURL+"?token=x", to[0].URL)
	assert.Len(t, tr.RequestsTo("https://other.example/health"), 1)
	assert.Empty(t, tr.RequestsTo("https://nobody.example/"))

	assert.Equal(t, 2, tr.Len())
	tr.Reset()
	assert.Equal(t, 0, tr.Len())
	assert.Empty(t, tr.Requests())
}

func TestTransportResetKeepsScripts(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script(hookURL, webhooktest.Status(500), webhooktest.Status(503), webhooktest.Status(200))
	code, _, err := send(t.Context(), tr, hookURL, "")
	require.NoError(t, err)
	require.Equal(t, 500, code)

	tr.Reset()
	code, _, err = send(t.Context(), tr, hookURL, "")
	require.NoError(t, err)
	assert.Equal(t, 503, code, "Reset keeps the script's position")
	assert.Equal(t, 1, tr.Len())
}

func TestTransportDelay(t *testing.T) {
	t.Run("short delay answers", func(t *testing.T) {
		tr := webhooktest.NewTransport()
		tr.Script(hookURL, webhooktest.Status(202).WithDelay(time.Millisecond))
		start := time.Now()
		code, _, err := send(t.Context(), tr, hookURL, "")
		require.NoError(t, err)
		assert.Equal(t, 202, code)
		assert.GreaterOrEqual(t, time.Since(start), time.Millisecond)
	})

	t.Run("cancelling the request ends the delay", func(t *testing.T) {
		ctx := testContext(t)
		tr := webhooktest.NewTransport()
		tr.Script(hookURL, webhooktest.Status(200).WithDelay(time.Hour))

		reqCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, _, err := send(reqCtx, tr, hookURL, "{}")
			errc <- err
		}()
		require.NoError(t, tr.Wait(ctx, 1), "the request is recorded while it is held")
		cancel()
		select {
		case err := <-errc:
			assert.ErrorIs(t, err, context.Canceled)
		case <-ctx.Done():
			t.Fatal("RoundTrip did not return when its context was cancelled")
		}
	})

	t.Run("request deadline ends the delay", func(t *testing.T) {
		tr := webhooktest.NewTransport()
		tr.Script(hookURL, webhooktest.Status(200).WithDelay(time.Hour))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		defer cancel()
		_, _, err := send(ctx, tr, hookURL, "{}")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("already-cancelled request is not recorded", func(t *testing.T) {
		tr := webhooktest.NewTransport()
		tr.Script(hookURL, webhooktest.Status(500), webhooktest.Status(201))
		_, _, err := send(expiredContext(t), tr, hookURL, "{}")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 0, tr.Len())
		code, _, err := send(t.Context(), tr, hookURL, "{}")
		require.NoError(t, err)
		assert.Equal(t, 500, code, "the script was not advanced")
	})
}

func TestTransportWait(t *testing.T) {
	t.Run("returns when requests arrive", func(t *testing.T) {
		ctx := testContext(t)
		tr := webhooktest.NewTransport()
		errc := make(chan error, 3)
		for range 3 {
			go func() {
				_, _, err := send(ctx, tr, hookURL, "{}")
				errc <- err
			}()
		}
		require.NoError(t, tr.Wait(ctx, 3))
		assert.GreaterOrEqual(t, tr.Len(), 3)
		for range 3 {
			assert.NoError(t, <-errc)
		}
	})

	t.Run("already satisfied", func(t *testing.T) {
		tr := webhooktest.NewTransport()
		_, _, err := send(t.Context(), tr, hookURL, "")
		require.NoError(t, err)
		assert.NoError(t, tr.Wait(expiredContext(t), 1))
	})

	t.Run("returns the context's error", func(t *testing.T) {
		tr := webhooktest.NewTransport()
		_, _, err := send(t.Context(), tr, hookURL, "")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, tr.Wait(ctx, 2), context.DeadlineExceeded)
	})
}

func TestTransportConcurrentUse(t *testing.T) {
	const workers, perWorker = 16, 50
	tr := webhooktest.NewTransport()
	tr.Script(hookURL, webhooktest.Status(500), webhooktest.Status(200))
	var (
		wg       sync.WaitGroup
		failures atomic.Int32
	)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				url := hookURL
				if i%2 == 1 {
					url = fmt.Sprintf("https://example.com/w%d", w)
				}
				code, _, err := send(t.Context(), tr, url, fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))
				if !assert.NoError(t, err) {
					return
				}
				if code == 500 {
					failures.Add(1)
				}
				_ = tr.Len()
				_ = tr.RequestsTo(url)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, workers*perWorker, tr.Len())
	assert.Len(t, tr.RequestsTo(hookURL), workers*perWorker/2)
	assert.EqualValues(t, 1, failures.Load(), "only the first request to the scripted URL got 500")

	seen := make(map[string]bool)
	for _, r := range tr.Requests() {
		assert.False(t, seen[string(r.Body)], "each body recorded once")
		seen[string(r.Body)] = true
	}
	assert.True(t, bytes.Contains(tr.Requests()[0].Body, []byte(`"w":`)))
}
