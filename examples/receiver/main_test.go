package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hooksmith/webhook"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 10 * time.Second

// recorder is a processFunc that remembers what it processed and can be told to fail.
type recorder struct {
	mu   sync.Mutex
	got  []webhook.Envelope
	fail int // fail this many calls first
}

func (r *recorder) process(_ context.Context, env webhook.Envelope) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return errors.New("database unavailable")
	}
	r.got = append(r.got, env)
	return nil
}

func (r *recorder) processed() []webhook.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Envelope(nil), r.got...)
}

// startReceiver serves newHandler on loopback with a fresh secret.
func startReceiver(t *testing.T, rec *recorder) (srv *httptest.Server, secret string) {
	t.Helper()
	secret = webhook.NewSecret()
	v, err := webhook.NewVerifier(secret)
	require.NoError(t, err)
	srv = httptest.NewServer(newHandler(v, rec.process, log.New(t.Output(), "receiver: ", 0)))
	t.Cleanup(srv.Close)
	return srv, secret
}

// TestHandlerWithSender drives the handler with a real Sender: signed deliveries are
// accepted, and a repeated webhook-id is acknowledged but processed once.
func TestHandlerWithSender(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	rec := &recorder{}
	srv, secret := startReceiver(t, rec)

	reports := make(chan webhook.AttemptReport, 16) // more than the test's attempts: hooks must not block
	s, err := webhook.NewSender(
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep_test", URL: srv.URL + "/webhooks", Secret: secret}),
		// The test server's transport, so srv.Close also closes the Sender's idle connections.
		webhook.WithTransport(srv.Client().Transport),
		webhook.WithRetryPolicy(webhook.RetryPolicy{MaxAttempts: 1}),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(r webhook.AttemptReport) { reports <- r }}),
	)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close(context.Background())) })

	wait := func() webhook.AttemptReport {
		t.Helper()
		select {
		case r := <-reports:
			return r
		case <-ctx.Done():
			t.Fatal("no attempt was reported")
			return webhook.AttemptReport{}
		}
	}
	// Sent one after the other, so the second copy of msg_dup finds the first done.
	for i, ev := range []webhook.Event{
		{Type: "user.registered", Data: map[string]string{"user_id": "u_1"}},
		{ID: "msg_dup", Type: "order.created", Data: map[string]int{"order_id": 7}},
		{ID: "msg_dup", Type: "order.created", Data: map[string]int{"order_id": 7}},
	} {
		ids, err := s.Send(ctx, ev)
		require.NoError(t, err)
		require.Len(t, ids, 1)
		r := wait()
		assert.Equal(t, http.StatusNoContent, r.Attempt.StatusCode, "event %d: %s", i, r.Attempt.Error)
		assert.Equal(t, webhook.Delivered, r.Verdict, "event %d", i)
	}

	got := rec.processed()
	require.Len(t, got, 2, "the duplicate is acknowledged but not processed")
	assert.Equal(t, "user.registered", got[0].Type)
	assert.JSONEq(t, `{"user_id":"u_1"}`, string(got[0].Data))
	assert.Equal(t, "msg_dup", got[1].ID)
	assert.Equal(t, "order.created", got[1].Type)
}

// signed returns a POST to url signed with secret, as a sender would make it.
func signed(t *testing.T, url, secret, id string, ts time.Time, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	sec, err := webhook.ParseSecret(secret)
	require.NoError(t, err)
	msg := webhook.Message{ID: id, Timestamp: ts, Body: []byte(body)}
	require.NoError(t, webhook.StandardSigner{}.Sign(req.Header, msg, []webhook.Secret{sec}))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func envelope(id string) string {
	return `{"id":"` + id + `","type":"order.created","timestamp":"2026-01-02T15:04:05Z","version":"1","data":{"order_id":7}}`
}

func TestHandlerRejects(t *testing.T) {
	tests := []struct {
		name   string
		req    func(t *testing.T, url, secret string) *http.Request
		status int
	}{
		{"tampered body", func(t *testing.T, url, secret string) *http.Request {
			req := signed(t, url, secret, "msg_1", time.Now(), envelope("msg_1"))
			req.Body = io.NopCloser(strings.NewReader(strings.Replace(envelope("msg_1"), "7", "8", 1)))
			return req
		}, http.StatusUnauthorized},
		{"tampered webhook-id", func(t *testing.T, url, secret string) *http.Request {
			req := signed(t, url, secret, "msg_1", time.Now(), envelope("msg_1"))
			req.Header.Set(webhook.HeaderID, "msg_2")
			return req
		}, http.StatusUnauthorized},
		{"other secret", func(t *testing.T, url, _ string) *http.Request {
			return signed(t, url, webhook.NewSecret(), "msg_1", time.Now(), envelope("msg_1"))
		}, http.StatusUnauthorized},
		{"replayed after the tolerance", func(t *testing.T, url, secret string) *http.Request {
			return signed(t, url, secret, "msg_1", time.Now().Add(-time.Hour), envelope("msg_1"))
		}, http.StatusUnauthorized},
		{"unsigned", func(t *testing.T, url, _ string) *http.Request {
			req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(envelope("msg_1")))
			require.NoError(t, err)
			return req
		}, http.StatusUnauthorized},
		{"too large", func(t *testing.T, url, secret string) *http.Request {
			return signed(t, url, secret, "msg_1", time.Now(), `{"pad":"`+strings.Repeat("x", maxBodyBytes)+`"}`)
		}, http.StatusRequestEntityTooLarge},
		{"signed, not an envelope", func(t *testing.T, url, secret string) *http.Request {
			return signed(t, url, secret, "msg_1", time.Now(), `[1,2,3]`)
		}, http.StatusBadRequest},
		{"GET", func(t *testing.T, url, _ string) *http.Request {
			req, err := http.NewRequest(http.MethodGet, url, nil)
			require.NoError(t, err)
			return req
		}, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			srv, secret := startReceiver(t, rec)
			resp, err := srv.Client().Do(tt.req(t, srv.URL, secret))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Empty(t, rec.processed(), "nothing rejected is processed")
		})
	}
}

// TestHandlerRetryAfterFailure checks that a failed event is processed again when the
// sender retries it (the id is not remembered), and only then counted as done.
func TestHandlerRetryAfterFailure(t *testing.T) {
	rec := &recorder{fail: 1}
	srv, secret := startReceiver(t, rec)
	post := func() int {
		t.Helper()
		// Each retry is signed afresh: same webhook-id, new timestamp.
		resp, err := srv.Client().Do(signed(t, srv.URL, secret, "msg_1", time.Now(), envelope("msg_1")))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusInternalServerError, post(), "processing failed: the sender should retry")
	assert.Empty(t, rec.processed())
	assert.Equal(t, http.StatusNoContent, post(), "the retry is processed")
	assert.Equal(t, http.StatusNoContent, post(), "a duplicate is acknowledged")
	assert.Len(t, rec.processed(), 1)
}

func TestIDSet(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	s := newIDSet(3, time.Hour, func() time.Time { return now })

	assert.Equal(t, idNew, s.begin("a"))
	assert.Equal(t, idInProgress, s.begin("a"), "a concurrent duplicate sees the first in progress")
	s.done("a")
	assert.Equal(t, idDone, s.begin("a"))

	assert.Equal(t, idNew, s.begin("b"))
	s.forget("b")
	assert.Equal(t, idNew, s.begin("b"), "a forgotten id is processed again")
	s.done("b")

	now = now.Add(30 * time.Minute)
	assert.Equal(t, idNew, s.begin("c"))
	assert.Equal(t, idNew, s.begin("d"), "a fourth id evicts the oldest entry")
	assert.Equal(t, idNew, s.begin("a"), "a was evicted to stay within size")
	assert.Equal(t, idNew, s.begin("b"), "b's first entry was evicted with it")

	now = now.Add(time.Hour)
	assert.Equal(t, idNew, s.begin("c"), "c expired after the TTL")
	assert.LessOrEqual(t, len(s.byID), 3)
	assert.LessOrEqual(t, len(s.order), 3)
}

func TestRun(t *testing.T) {
	logger := log.New(t.Output(), "receiver: ", 0)
	t.Run("needs a secret", func(t *testing.T) {
		err := run(t.Context(), "127.0.0.1:0", "", logger)
		assert.ErrorContains(t, err, "WEBHOOK_SECRET")
	})
	t.Run("rejects a bad secret", func(t *testing.T) {
		err := run(t.Context(), "127.0.0.1:0", "hunter2", logger)
		assert.ErrorIs(t, err, webhook.ErrInvalidSecret)
	})
	t.Run("stops when the context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		assert.NoError(t, run(ctx, "127.0.0.1:0", webhook.NewSecret(), logger))
	})
}
