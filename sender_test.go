package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
	"github.com/hooksmith/webhook/webhooktest"
)

// testCtx is a context for waits in tests: generous, so a slow machine does not fail a
// correct test, but bounded, so a broken one ends.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newSender starts a Sender closed at the end of the test. The destination guard allows
// loopback, where the tests' receivers listen; guard tests use startSender.
func newSender(t *testing.T, opts ...webhook.Option) *webhook.Sender {
	t.Helper()
	return startSender(t, append([]webhook.Option{loopback}, opts...)...)
}

func startSender(t *testing.T, opts ...webhook.Option) *webhook.Sender {
	t.Helper()
	s, err := webhook.NewSender(opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Close(ctx))
	})
	return s
}

// reports collects AttemptReports through the OnAttempt hook.
type reports struct {
	ch chan webhook.AttemptReport
}

func newReports() *reports { return &reports{ch: make(chan webhook.AttemptReport, 1024)} }

func (r *reports) hooks() webhook.Option {
	return webhook.WithHooks(webhook.Hooks{OnAttempt: func(a webhook.AttemptReport) { r.ch <- a }})
}

func (r *reports) next(t *testing.T) webhook.AttemptReport {
	t.Helper()
	select {
	case a := <-r.ch:
		return a
	case <-testCtx(t).Done():
		t.Fatal("timed out waiting for an attempt")
		return webhook.AttemptReport{}
	}
}

// waitFinal waits until n deliveries reached a final state and returns their reports.
func (r *reports) waitFinal(t *testing.T, n int) []webhook.AttemptReport {
	t.Helper()
	var out []webhook.AttemptReport
	for len(out) < n {
		if a := r.next(t); a.Final {
			out = append(out, a)
		}
	}
	return out
}

func endpoint(id, url, secret string) webhook.Endpoint {
	return webhook.Endpoint{ID: id, URL: url, Secret: secret}
}

func TestSendDeliversSignedVerifiableRequests(t *testing.T) {
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL+"/hook", secret)), rep.hooks(),
		webhook.WithWorkers(4))

	ctx := testCtx(t)
	const n = 50
	eventIDs := map[string]bool{}
	for i := range n {
		ids, err := s.Send(ctx, webhook.Event{Type: "user.registered", Data: map[string]int{"n": i}})
		require.NoError(t, err)
		require.Len(t, ids, 1)
		d, err := s.Delivery(ctx, ids[0])
		require.NoError(t, err)
		eventIDs[d.EventID] = true
	}
	require.NoError(t, recv.WaitVerified(ctx, n))
	rep.waitFinal(t, n)
	assert.Len(t, eventIDs, n, "a distinct generated event ID per event")
	for id := range eventIDs {
		assert.Regexp(t, `^msg_[0-7][0-9A-HJKMNP-TV-Z]{25}$`, id)
	}

	got := recv.Verified()
	require.Len(t, got, n)
	seen := map[int]bool{}
	for _, d := range got {
		assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
		assert.Equal(t, webhook.DefaultUserAgent, d.Header.Get("User-Agent"))
		assert.Equal(t, webhook.DefaultVersion, d.Header.Get("webhook-version"))
		assert.Equal(t, "user.registered", d.Envelope.Type)
		assert.Equal(t, webhook.DefaultVersion, d.Envelope.Version)
		assert.Equal(t, d.Header.Get("webhook-id"), d.Envelope.ID, "webhook-id is the envelope id")
		assert.True(t, eventIDs[d.Envelope.ID], "unknown event id %s", d.Envelope.ID)
		var data struct{ N int }
		require.NoError(t, json.Unmarshal(d.Envelope.Data, &data))
		seen[data.N] = true
	}
	assert.Len(t, seen, n, "every event delivered")
	assert.Zero(t, recv.Duplicates())

	res, err := s.Deliveries(ctx, webhook.ListParams{State: webhook.StateSucceeded, Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, n)
}

func TestWrongSecretIsRejectedByReceiver(t *testing.T) {
	recv := webhooktest.NewReceiver(t, webhook.NewSecret())
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL, webhook.NewSecret())), rep.hooks(),
		webhook.WithRetryPolicy(webhook.RetryPolicy{MaxAttempts: 1}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, http.StatusUnauthorized, a.Attempt.StatusCode)
	assert.Equal(t, webhook.StateFailed, a.Delivery.State, "401 is permanent")
	require.Len(t, recv.Deliveries(), 1)
	assert.ErrorIs(t, recv.Deliveries()[0].VerifyErr, webhook.ErrNoMatchingSignature)
}

func TestRetriesFollowScheduleWithInjectedClock(t *testing.T) {
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	recv.Script(webhooktest.Status(500), webhooktest.Status(503), webhooktest.Status(200))
	clk := webhooktest.NewClock(time.Now())
	recv.Verifier().Now = clk.Now
	rep := newReports()
	sched := webhook.FixedSchedule{10 * time.Second, time.Minute}
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL, secret)), rep.hooks(),
		webhook.WithClock(clk), webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: sched}))

	start := clk.Now()
	ids, err := s.Send(testCtx(t), webhook.Event{Type: "order.created"})
	require.NoError(t, err)

	a1 := rep.next(t)
	assert.Equal(t, 500, a1.Attempt.StatusCode)
	assert.Equal(t, webhook.Retry, a1.Verdict)
	assert.False(t, a1.Final)
	assert.Equal(t, start.Add(10*time.Second), a1.Delivery.NextAttemptAt)

	// Nothing happens until the clock reaches the retry.
	clk.Advance(9 * time.Second)
	select {
	case a := <-rep.ch:
		t.Fatalf("attempt before it was due: %+v", a.Attempt)
	default:
	}
	clk.Advance(time.Second)
	a2 := rep.next(t)
	assert.Equal(t, 503, a2.Attempt.StatusCode)
	assert.Equal(t, clk.Now().Add(time.Minute), a2.Delivery.NextAttemptAt)

	clk.Advance(time.Minute)
	a3 := rep.next(t)
	assert.Equal(t, 200, a3.Attempt.StatusCode)
	assert.True(t, a3.Final)
	assert.Equal(t, webhook.StateSucceeded, a3.Delivery.State)

	attempts, err := s.Attempts(testCtx(t), ids[0])
	require.NoError(t, err)
	require.Len(t, attempts, 3)
	for i, a := range attempts {
		assert.Equal(t, i+1, a.Number)
	}
	// Every attempt carries the same event ID and body but its own timestamp.
	got := recv.Deliveries()
	require.Len(t, got, 3)
	for _, d := range got {
		assert.Equal(t, got[0].Header.Get("webhook-id"), d.Header.Get("webhook-id"))
		assert.Equal(t, got[0].Body, d.Body)
	}
	assert.NotEqual(t, got[0].Header.Get("webhook-timestamp"), got[2].Header.Get("webhook-timestamp"))
}

func TestStatusClassification(t *testing.T) {
	cases := []struct {
		status  int
		verdict webhook.Verdict
		state   webhook.State
	}{
		{200, webhook.Delivered, webhook.StateSucceeded},
		{204, webhook.Delivered, webhook.StateSucceeded},
		{301, webhook.Retry, webhook.StatePending},
		{302, webhook.Retry, webhook.StatePending},
		{400, webhook.Retry, webhook.StatePending},
		{401, webhook.Retry, webhook.StatePending},
		{403, webhook.Retry, webhook.StatePending},
		{404, webhook.Retry, webhook.StatePending},
		{408, webhook.Retry, webhook.StatePending},
		{410, webhook.Gone, webhook.StateFailed},
		{422, webhook.Retry, webhook.StatePending},
		{425, webhook.Retry, webhook.StatePending},
		{429, webhook.Retry, webhook.StatePending},
		{500, webhook.Retry, webhook.StatePending},
		{501, webhook.Retry, webhook.StatePending},
		{502, webhook.Retry, webhook.StatePending},
		{503, webhook.Retry, webhook.StatePending},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			tr := webhooktest.NewTransport()
			resp := webhooktest.Status(tc.status)
			if tc.status >= 300 && tc.status < 400 {
				resp = resp.WithHeader("Location", "http://127.0.0.1:1/elsewhere")
			}
			tr.Script("https://receiver.test/hook", resp)
			rep := newReports()
			s := newSender(t, webhook.WithTransport(tr), rep.hooks(),
				webhook.WithEndpoints(endpoint("ep_1", "https://receiver.test/hook", webhook.NewSecret())))
			_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
			require.NoError(t, err)
			a := rep.next(t)
			assert.Equal(t, tc.verdict, a.Verdict)
			assert.Equal(t, tc.state, a.Delivery.State)
			assert.Equal(t, 1, tr.Len(), "exactly one request; redirects are not followed")
		})
	}
}

// permanent400 is a Classifier that dead-letters a 400 at once and is otherwise the
// default.
func permanent400(status int, err error) webhook.Verdict {
	if status == http.StatusBadRequest {
		return webhook.Permanent
	}
	return webhook.DefaultClassifier(status, err)
}

func TestAClassifierCanMakeAStatusPermanent(t *testing.T) {
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	recv.Script(webhooktest.Status(400))
	clk := webhooktest.NewClock(time.Now())
	recv.Verifier().Now = clk.Now
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL, secret)), rep.hooks(), webhook.WithClock(clk),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Classify: permanent400}))
	ids, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	require.True(t, a.Final)
	// Run the clock well past every retry the schedule could make.
	clk.Advance(48 * time.Hour)
	d, err := s.Delivery(testCtx(t), ids[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StateFailed, d.State)
	assert.Equal(t, 1, d.Attempts)
	assert.Len(t, recv.Deliveries(), 1)
	assert.Contains(t, d.LastError, "HTTP 400")

	failed, err := s.Deliveries(testCtx(t), webhook.ListParams{State: webhook.StateFailed})
	require.NoError(t, err)
	require.Len(t, failed.Deliveries, 1, "dead letters are listed")
}

func TestRetryAfterIsHonouredAndClamped(t *testing.T) {
	clk := webhooktest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	cases := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"seconds", 429, "120", 120 * time.Second},
		{"date", 503, clk.Now().Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"absurd seconds clamped", 429, "99999999999", 30 * time.Minute},
		{"absurd date clamped", 503, "Fri, 31 Dec 9999 23:59:59 GMT", 30 * time.Minute},
		{"zero floored", 429, "0", webhook.MinRetryAfter},
		{"garbage uses schedule", 429, "soon", 0},
		{"ignored on 500", 500, "120", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := webhooktest.NewTransport()
			tr.Script("https://r.test/", webhooktest.Status(tc.status).WithHeader("Retry-After", tc.retryAfter))
			rep := newReports()
			s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), rep.hooks(),
				webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
				webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{7 * time.Second}, MaxRetryAfter: 30 * time.Minute}))
			_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
			require.NoError(t, err)
			a := rep.next(t)
			require.Equal(t, webhook.StatePending, a.Delivery.State)
			h, err := s.EndpointHealth("ep")
			require.NoError(t, err)
			if tc.want == 0 {
				assert.Zero(t, h.PausedUntil, "no pause")
				assert.Equal(t, 7*time.Second, a.Delivery.NextAttemptAt.Sub(clk.Now()), "the schedule")
				return
			}
			// The receiver paused the endpoint; the delivery keeps its place in line,
			// due as it was, and goes first when the pause ends.
			assert.Equal(t, tc.want, h.PausedUntil.Sub(clk.Now()))
			assert.Equal(t, a.Delivery.CreatedAt, a.Delivery.NextAttemptAt)
		})
	}
}

func TestMaxAttemptsDeadLettersAndManualRetryRedelivers(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(500), webhooktest.Status(500), webhooktest.Status(200))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{MaxAttempts: 2, Schedule: webhook.FixedSchedule{0}}))
	ctx := testCtx(t)
	ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	final := rep.waitFinal(t, 1)[0]
	assert.Equal(t, webhook.StateFailed, final.Delivery.State)
	assert.Equal(t, 2, final.Delivery.Attempts)
	assert.Equal(t, 2, tr.Len())

	n, err := s.Retry(ctx, ids[0])
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	final = rep.waitFinal(t, 1)[0]
	assert.Equal(t, webhook.StateSucceeded, final.Delivery.State)
	assert.Equal(t, 1, final.Delivery.Attempts, "a manual retry starts a fresh budget")
	attempts, err := s.Attempts(ctx, ids[0])
	require.NoError(t, err)
	assert.Len(t, attempts, 3, "the attempt log keeps every attempt")

	_, err = s.Retry(ctx, "dlv_missing")
	assert.ErrorIs(t, err, webhook.ErrNotFound)
}

func TestRetryFailedRequeuesAnEndpointsDeadLetters(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://a.test/", webhooktest.Status(400), webhooktest.Status(400), webhooktest.Status(400), webhooktest.Status(200))
	tr.Script("https://b.test/", webhooktest.Status(400))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithWorkers(1),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Classify: permanent400}),
		webhook.WithEndpoints(endpoint("a", "https://a.test/", webhook.NewSecret()), endpoint("b", "https://b.test/", webhook.NewSecret())))
	ctx := testCtx(t)
	for range 3 {
		_, err := s.Send(ctx, webhook.Event{Type: "x.y"})
		require.NoError(t, err)
	}
	rep.waitFinal(t, 6)
	n, err := s.RetryFailed(ctx, "a", time.Time{})
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	for _, r := range rep.waitFinal(t, 3) {
		assert.Equal(t, "a", r.Delivery.EndpointID)
		assert.Equal(t, webhook.StateSucceeded, r.Delivery.State)
	}
	failed, err := s.Deliveries(ctx, webhook.ListParams{State: webhook.StateFailed})
	require.NoError(t, err)
	assert.Len(t, failed.Deliveries, 3, "b's dead letters untouched")
}

func TestFanOutByEventTypeAndVersion(t *testing.T) {
	tr := webhooktest.NewTransport()
	rep := newReports()
	sec := webhook.NewSecret()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithVersion("2"),
		webhook.WithEndpoints(
			webhook.Endpoint{ID: "all", URL: "https://all.test/", Secret: sec},
			webhook.Endpoint{ID: "users", URL: "https://users.test/", Secret: sec, EventTypes: []string{"user.*"}},
			webhook.Endpoint{ID: "exact", URL: "https://exact.test/", Secret: sec, EventTypes: []string{"order.created"}},
			webhook.Endpoint{ID: "v1", URL: "https://v1.test/", Secret: sec, Version: "1"},
		))
	ctx := testCtx(t)
	cases := []struct {
		ev   webhook.Event
		want []string
	}{
		{webhook.Event{Type: "user.created"}, []string{"all", "users"}},
		{webhook.Event{Type: "user.profile.updated"}, []string{"all", "users"}},
		{webhook.Event{Type: "order.created"}, []string{"all", "exact"}},
		{webhook.Event{Type: "order.deleted"}, []string{"all"}},
		{webhook.Event{Type: "order.created", Version: "1"}, []string{"v1"}},
		{webhook.Event{Type: "order.created", Version: "3"}, nil},
	}
	for _, tc := range cases {
		ids, err := s.Send(ctx, tc.ev)
		require.NoError(t, err)
		var got []string
		for _, id := range ids {
			d, err := s.Delivery(ctx, id)
			require.NoError(t, err)
			got = append(got, d.EndpointID)
		}
		assert.Equal(t, tc.want, got, "%s v%s", tc.ev.Type, tc.ev.Version)
	}
	rep.waitFinal(t, 7)
	for _, r := range tr.RequestsTo("https://v1.test/") {
		assert.Equal(t, "1", r.Header.Get("webhook-version"))
	}
}

func TestSendToTargetsNamedEndpoints(t *testing.T) {
	tr := webhooktest.NewTransport()
	rep := newReports()
	sec := webhook.NewSecret()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithEndpoints(
		webhook.Endpoint{ID: "a", URL: "https://a.test/", Secret: sec, EventTypes: []string{"only.this"}},
		webhook.Endpoint{ID: "b", URL: "https://b.test/", Secret: sec, Disabled: true},
	))
	ctx := testCtx(t)
	ids, err := s.SendTo(ctx, webhook.Event{Type: "other.type"}, "a")
	require.NoError(t, err)
	require.Len(t, ids, 1)
	rep.waitFinal(t, 1)
	assert.Len(t, tr.RequestsTo("https://a.test/"), 1)

	_, err = s.SendTo(ctx, webhook.Event{Type: "x.y"}, "missing")
	assert.ErrorIs(t, err, webhook.ErrEndpointNotFound)
	_, err = s.SendTo(ctx, webhook.Event{Type: "x.y"}, "b")
	assert.ErrorIs(t, err, webhook.ErrEndpointDisabled)
	_, err = s.SendTo(ctx, webhook.Event{Type: "x.y"})
	assert.ErrorIs(t, err, webhook.ErrEndpointNotFound)
}

func TestInvalidEventsAreRejectedWithTypedErrors(t *testing.T) {
	tr := webhooktest.NewTransport()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithMaxPayloadSize(256),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())))
	ctx := testCtx(t)
	cases := []struct {
		name  string
		ev    webhook.Event
		field string
		also  error
	}{
		{"empty type", webhook.Event{}, "Type", nil},
		{"bad type", webhook.Event{Type: "has space"}, "Type", nil},
		{"bad id", webhook.Event{ID: "no spaces allowed", Type: "a.b"}, "ID", nil},
		{"bad version", webhook.Event{Type: "a.b", Version: "x\ny"}, "Version", nil},
		{"unmarshalable", webhook.Event{Type: "a.b", Data: make(chan int)}, "Data", nil},
		{"invalid raw json", webhook.Event{Type: "a.b", Data: json.RawMessage("{nope")}, "Data", nil},
		{"too large", webhook.Event{Type: "a.b", Data: strings.Repeat("x", 300)}, "Data", webhook.ErrPayloadTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := s.Send(ctx, tc.ev)
			require.Error(t, err)
			assert.Nil(t, ids)
			assert.ErrorIs(t, err, webhook.ErrInvalidEvent)
			var ve *webhook.ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, tc.field, ve.Field)
			if tc.also != nil {
				assert.ErrorIs(t, err, tc.also)
			}
		})
	}
	res, err := s.Deliveries(ctx, webhook.ListParams{})
	require.NoError(t, err)
	assert.Empty(t, res.Deliveries, "nothing half-accepted")
	assert.Zero(t, tr.Len())
}

func TestInvalidEndpointsAreRejected(t *testing.T) {
	good := webhook.Endpoint{ID: "ep", URL: "https://r.test/hook", Secret: webhook.NewSecret()}
	cases := []struct {
		name  string
		edit  func(*webhook.Endpoint)
		field string
		also  error
	}{
		{"no id", func(e *webhook.Endpoint) { e.ID = "" }, "ID", nil},
		{"relative url", func(e *webhook.Endpoint) { e.URL = "/hook" }, "URL", nil},
		{"ftp url", func(e *webhook.Endpoint) { e.URL = "ftp://r.test/" }, "URL", nil},
		{"no host", func(e *webhook.Endpoint) { e.URL = "https:///x" }, "URL", nil},
		{"host that does not print back", func(e *webhook.Endpoint) { e.URL = "http://[::%25\x88]/" }, "URL", nil},
		{"malformed secret", func(e *webhook.Endpoint) { e.Secret = "whsec_short" }, "Secret", webhook.ErrInvalidSecret},
		{"raw secret", func(e *webhook.Endpoint) { e.Secret = "hunter2-hunter2-hunter2-hunter2" }, "Secret", webhook.ErrInvalidSecret},
		{"bad previous secret", func(e *webhook.Endpoint) { e.PreviousSecrets = []string{"nope"} }, "PreviousSecrets[0]", webhook.ErrInvalidSecret},
		{"header CRLF", func(e *webhook.Endpoint) { e.Headers = map[string]string{"X-A": "a\r\nX-B: b"} }, "Headers[X-A]", nil},
		{"header bad name", func(e *webhook.Endpoint) { e.Headers = map[string]string{"X A": "a"} }, "Headers[X A]", nil},
		{"reserved header", func(e *webhook.Endpoint) { e.Headers = map[string]string{"Webhook-Signature": "x"} }, "Headers[Webhook-Signature]", nil},
		{"bad filter", func(e *webhook.Endpoint) { e.EventTypes = []string{"user*"} }, "EventTypes", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ep := good
			tc.edit(&ep)
			_, err := webhook.NewSender(webhook.WithEndpoints(ep))
			require.Error(t, err)
			assert.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
			var ve *webhook.ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, tc.field, ve.Field)
			if tc.also != nil {
				assert.ErrorIs(t, err, tc.also)
			}
			assert.NotContains(t, err.Error(), ep.Secret)
		})
	}
}

func TestInvalidOptionsAreRejected(t *testing.T) {
	cases := map[string][]webhook.Option{
		"zero workers":          {webhook.WithWorkers(0)},
		"negative timeout":      {webhook.WithTimeout(-time.Second)},
		"lease below timeout":   {webhook.WithTimeout(time.Minute), webhook.WithLeaseDuration(time.Minute)},
		"nil store":             {webhook.WithStore(nil)},
		"capacity with store":   {webhook.WithStore(webhook.NewMemoryStore(10)), webhook.WithQueueCapacity(5)},
		"endpoint limit":        {webhook.WithWorkers(2), webhook.WithEndpointConcurrency(3)},
		"bad version header":    {webhook.WithVersionHeader("a b")},
		"bad retry policy":      {webhook.WithRetryPolicy(webhook.RetryPolicy{MaxAttempts: -1})},
		"bad exponential":       {webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.ExponentialSchedule{}})},
		"tiny payload limit":    {webhook.WithMaxPayloadSize(1)},
		"bad response limits":   {webhook.WithResponseLimits(10, 20)},
		"bad retention":         {webhook.WithRetention(0, time.Hour)},
		"duplicate endpoint id": {webhook.WithEndpoints(endpoint("a", "https://a.test/", webhook.NewSecret()), endpoint("a", "https://b.test/", webhook.NewSecret()))},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := webhook.NewSender(opts...)
			require.Error(t, err)
			assert.Nil(t, s)
			if name != "duplicate endpoint id" {
				assert.ErrorIs(t, err, webhook.ErrInvalidOption)
			} else {
				assert.ErrorIs(t, err, webhook.ErrEndpointExists)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(200).WithDelay(time.Hour))
	ctx := testCtx(t)

	t.Run("fail fast", func(t *testing.T) {
		store := webhook.NewMemoryStore(2)
		s := newSender(t, webhook.WithTransport(tr), webhook.WithStore(store), webhook.WithFailFast(true),
			webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())), webhook.WithTimeout(time.Second),
			webhook.WithLeaseDuration(time.Minute))
		for range 2 {
			_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
			require.NoError(t, err)
		}
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		assert.ErrorIs(t, err, webhook.ErrQueueFull)
		assert.Equal(t, 2, store.Len(), "the rejected event stored nothing")
	})

	t.Run("blocks until room", func(t *testing.T) {
		recvSecret := webhook.NewSecret()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		store := webhook.NewMemoryStore(1)
		s := newSender(t, webhook.WithStore(store), webhook.WithEndpoints(endpoint("ep", srv.URL, recvSecret)))
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		require.NoError(t, err)

		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = s.Send(short, webhook.Event{Type: "a.b"})
		cancel()
		assert.ErrorIs(t, err, webhook.ErrQueueFull)
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		done := make(chan error, 1)
		go func() {
			_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
			done <- err
		}()
		close(release) // the first delivery completes, making room
		require.NoError(t, <-done)
	})
}

func TestCloseLeavesUndeliveredInStoreAndAbortsInFlight(t *testing.T) {
	srv := newHangingServer(t, -1)
	store := webhook.NewMemoryStore(0)
	clk := webhooktest.NewClock(time.Now())
	s, err := webhook.NewSender(webhook.WithStore(store), webhook.WithClock(clk), webhook.WithWorkers(1), loopback,
		webhook.WithEndpoints(endpoint("ep", srv.URL, webhook.NewSecret())))
	require.NoError(t, err)
	ctx := testCtx(t)
	first, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	second, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	<-srv.started

	closeCtx, cancel := context.WithCancel(ctx)
	cancel() // no grace: abort the hanging attempt at once
	assert.ErrorIs(t, s.Close(closeCtx), context.Canceled)

	_, err = s.Send(ctx, webhook.Event{Type: "a.b"})
	assert.ErrorIs(t, err, webhook.ErrClosed)
	assert.NoError(t, s.Close(ctx), "Close is idempotent")

	for _, id := range append(first, second...) {
		d, err := store.Get(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, webhook.StatePending, d.State, "undelivered stays pending")
		assert.False(t, d.NextAttemptAt.After(clk.Now()), "due at once for the next Sender")
	}

	// A new Sender on the same store delivers both.
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	rep := newReports()
	s2 := newSender(t, webhook.WithStore(store), rep.hooks(), webhook.WithEndpoints(endpoint("ep", recv.URL, secret)))
	rep.waitFinal(t, 2)
	assert.Equal(t, 2, recv.UniqueIDs())
	_ = s2
}

func TestSlowEndpointDoesNotStallOthers(t *testing.T) {
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	rep := newReports()
	s := newSender(t, webhook.WithWorkers(4), rep.hooks(), webhook.WithEndpoints(
		webhook.Endpoint{ID: "slow", URL: hang.URL, Secret: secret, EventTypes: []string{"slow.*"}},
		webhook.Endpoint{ID: "fast", URL: recv.URL, Secret: secret, EventTypes: []string{"fast.*"}},
	))
	ctx := testCtx(t)
	// A backlog for the hanging endpoint first, larger than the worker pool.
	for range 20 {
		_, err := s.Send(ctx, webhook.Event{Type: "slow.x"})
		require.NoError(t, err)
	}
	for range 30 {
		_, err := s.Send(ctx, webhook.Event{Type: "fast.x"})
		require.NoError(t, err)
	}
	// The fast endpoint gets everything while the slow one still hangs (its attempts
	// time out only after DefaultTimeout, far beyond this wait).
	require.NoError(t, recv.WaitVerified(ctx, 30))
	pending, err := s.Deliveries(ctx, webhook.ListParams{EndpointID: "slow", State: webhook.StatePending})
	require.NoError(t, err)
	assert.NotEmpty(t, pending.Deliveries, "slow endpoint capped below the pool size")

	// Closing with a short grace aborts the hanging attempts and leaves them pending.
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Close(closeCtx), context.DeadlineExceeded)
	stuck, err := s.Deliveries(ctx, webhook.ListParams{EndpointID: "slow", State: webhook.StatePending, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, stuck.Deliveries, 20, "nothing accepted is lost")
}

func TestGoneDisablesEndpointAndKeepsItsPendingDeliveries(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://gone.test/", webhooktest.Status(410))
	disabled := make(chan string, 1)
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithWorkers(1), webhook.WithEndpoints(
		endpoint("gone", "https://gone.test/", webhook.NewSecret())),
		webhook.WithHooks(webhook.Hooks{
			OnAttempt:          func(a webhook.AttemptReport) { rep.ch <- a },
			OnEndpointDisabled: func(id, reason string) { disabled <- id },
		}))
	ctx := testCtx(t)
	_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, webhook.Gone, a.Verdict)
	assert.Equal(t, "gone", <-disabled)
	ep, err := s.Endpoint("gone")
	require.NoError(t, err)
	assert.True(t, ep.Disabled)

	// New events skip the disabled endpoint; explicit ones are refused.
	ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	assert.Empty(t, ids)

	// Deliveries queued for it while disabled (requeued dead letter) wait, then go out
	// once it is enabled again.
	_, err = s.Retry(ctx, a.Delivery.ID)
	require.NoError(t, err)
	tr.Script("https://gone.test/", webhooktest.Status(200))
	require.NoError(t, s.EnableEndpoint("gone"))
	final := rep.waitFinal(t, 1)[0]
	assert.Equal(t, webhook.StateSucceeded, final.Delivery.State)
}

func TestEndpointChangesApplyToQueuedDeliveries(t *testing.T) {
	oldSecret, newSecret := webhook.NewSecret(), webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, newSecret) // knows only the new secret
	tr := webhooktest.NewTransport()
	clk := webhooktest.NewClock(time.Now())
	recv.Verifier().Now = clk.Now
	rep := newReports()
	s := newSender(t, webhook.WithClock(clk), rep.hooks(),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: "https://old.test/", Secret: oldSecret}),
		webhook.WithTransport(routeTransport{tr, recv.URL}),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Minute}}))
	tr.Script("https://old.test/", webhooktest.Status(503))
	ctx := testCtx(t)
	ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	require.Equal(t, webhook.StatePending, a.Delivery.State)

	// Move the endpoint and rotate its secret, keeping the old one active.
	require.NoError(t, s.UpdateEndpoint(webhook.Endpoint{ID: "ep", URL: "http://new.test/", Secret: newSecret, PreviousSecrets: []string{oldSecret}}))
	clk.Advance(time.Minute)
	a = rep.next(t)
	assert.Equal(t, webhook.StateSucceeded, a.Delivery.State)
	got := recv.Verified()
	require.Len(t, got, 1)
	assert.Equal(t, ids[0], a.Delivery.ID)
	sigs := strings.Fields(got[0].Header.Get("webhook-signature"))
	assert.Len(t, sigs, 2, "one signature per active secret")
	old, err := webhook.NewVerifier(oldSecret)
	require.NoError(t, err)
	old.Now = clk.Now
	assert.NoError(t, old.Verify(got[0].Header, got[0].Body), "receivers still on the old secret verify too")
}

// routeTransport sends requests for new.test to a real receiver and the rest to a fake.
type routeTransport struct {
	fake *webhooktest.Transport
	real string
}

func (rt routeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != "new.test" {
		return rt.fake.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	u := *r.URL
	u.Scheme, u.Host = "http", strings.TrimPrefix(rt.real, "http://")
	r2.URL, r2.Host = &u, ""
	return http.DefaultTransport.RoundTrip(r2)
}

func TestEndpointRegistryConcurrentChanges(t *testing.T) {
	tr := webhooktest.NewTransport()
	s := newSender(t, webhook.WithTransport(tr))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("ep_%d_%d", g, i)
				ep := endpoint(id, "https://r.test/"+id, webhook.NewSecret())
				assert.NoError(t, s.AddEndpoint(ep))
				ep.EventTypes = []string{"a.*"}
				assert.NoError(t, s.UpdateEndpoint(ep))
				assert.NoError(t, s.DisableEndpoint(id))
				assert.NoError(t, s.EnableEndpoint(id))
				ids, err := s.Send(ctx, webhook.Event{Type: "a.b"})
				assert.NoError(t, err)
				sent.Add(int64(len(ids)))
				if i%2 == 0 {
					assert.NoError(t, s.RemoveEndpoint(id))
				}
			}
		}()
	}
	wg.Wait()
	assert.Len(t, s.Endpoints(), 100)
	assert.ErrorIs(t, s.AddEndpoint(s.Endpoints()[0]), webhook.ErrEndpointExists)
	assert.ErrorIs(t, s.UpdateEndpoint(endpoint("nope", "https://x.test/", webhook.NewSecret())), webhook.ErrEndpointNotFound)
	assert.ErrorIs(t, s.RemoveEndpoint("nope"), webhook.ErrEndpointNotFound)
	assert.Positive(t, sent.Load())
}

func TestRemovedEndpointDeadLettersItsDeliveries(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(503))
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Minute}}))
	ids, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	rep.next(t)
	require.NoError(t, s.RemoveEndpoint("ep"))
	// The next due attempt finds no endpoint: the delivery is dead-lettered with a reason,
	// not dropped.
	require.NoError(t, clk.WaitForTimers(testCtx(t), 1))
	clk.Advance(time.Minute)
	a := rep.next(t)
	assert.True(t, a.Final)
	assert.Zero(t, a.Attempt, "no request was made")
	d, err := s.Delivery(testCtx(t), ids[0])
	require.NoError(t, err)
	assert.Contains(t, d.LastError, "removed")
	assert.Equal(t, 1, tr.Len())
}

func TestHexSignerEndToEnd(t *testing.T) {
	recv := webhooktest.NewUnverifiedReceiver(t)
	secret := webhook.NewSecret()
	rep := newReports()
	s := newSender(t, rep.hooks(), webhook.WithEndpoints(webhook.Endpoint{ID: "gh", URL: recv.URL, Secret: secret,
		Signer: webhook.HexSigner{Header: "X-Hub-Signature-256", Prefix: "sha256="}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "push.created"})
	require.NoError(t, err)
	rep.waitFinal(t, 1)
	got := recv.Deliveries()
	require.Len(t, got, 1)
	sig := got[0].Header.Get("X-Hub-Signature-256")
	require.True(t, strings.HasPrefix(sig, "sha256="))
	assert.Equal(t, hexHMAC(t, secret, got[0].Body), strings.TrimPrefix(sig, "sha256="))
	assert.Empty(t, got[0].Header.Get("webhook-signature"))
	assert.NotEmpty(t, got[0].Header.Get("webhook-id"), "the idempotency key is sent whatever the scheme")
}

func TestCustomHeadersAndVersionHeader(t *testing.T) {
	tr := webhooktest.NewTransport()
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithVersionHeader("X-Api-Version"),
		webhook.WithUserAgent("acme-hooks/2"),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: "https://r.test/", Secret: webhook.NewSecret(),
			Headers: map[string]string{"X-Tenant": "t1", "Authorization": "Bearer abc"}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b", Version: "1"})
	require.NoError(t, err)
	rep.waitFinal(t, 1)
	r := tr.Requests()[0]
	assert.Equal(t, "t1", r.Header.Get("X-Tenant"))
	assert.Equal(t, "Bearer abc", r.Header.Get("Authorization"))
	assert.Equal(t, "1", r.Header.Get("X-Api-Version"))
	assert.Equal(t, "acme-hooks/2", r.Header.Get("User-Agent"))
	assert.Equal(t, http.MethodPost, r.Method)
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Fail(errors.New("connection reset by peer")), webhooktest.Status(200))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, webhook.Retry, a.Verdict)
	assert.Zero(t, a.Attempt.StatusCode)
	assert.Contains(t, a.Attempt.Error, "connection reset")
	a = rep.next(t)
	assert.Equal(t, webhook.StateSucceeded, a.Delivery.State)
}

func TestAttemptTimeoutIsRetried(t *testing.T) {
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(200).WithDelay(time.Hour), webhooktest.Status(200))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(), webhook.WithTimeout(20*time.Millisecond),
		webhook.WithLeaseDuration(10*time.Second),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, webhook.Retry, a.Verdict)
	assert.Contains(t, a.Attempt.Error, "deadline exceeded")
	assert.Equal(t, webhook.StateSucceeded, rep.next(t).Delivery.State)
}

func TestSecretsNeverReachLogsErrorsOrAttempts(t *testing.T) {
	secret := webhook.NewSecret()
	core, logs := observer.New(zap.DebugLevel)
	tr := webhooktest.NewTransport()
	const rawURL = "https://user:p4ssw0rd@r.test/hook?token=s3cr3tq"
	tr.Script("https://r.test/hook", webhooktest.Fail(errors.New("boom")), webhooktest.Status(500),
		webhooktest.Status(410))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithLogger(zap.New(core)), rep.hooks(),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: rawURL, Secret: secret}),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	var texts []string
	for _, r := range rep.waitFinal(t, 1) {
		texts = append(texts, r.Attempt.Error, r.Delivery.LastError)
	}
	require.Equal(t, 3, tr.Len())
	sig := tr.Requests()[0].Header.Get("webhook-signature")
	require.NotEmpty(t, sig)
	for _, e := range logs.All() {
		texts = append(texts, e.Message)
		for k, v := range e.ContextMap() {
			texts = append(texts, k, fmt.Sprint(v))
		}
	}
	// Errors from bad input must not leak either.
	err = s.AddEndpoint(webhook.Endpoint{ID: "x", URL: rawURL, Secret: secret[:20]})
	require.Error(t, err)
	texts = append(texts, err.Error())
	require.NotEmpty(t, logs.All(), "the logger saw the attempts")
	for _, text := range texts {
		for _, leak := range []string{secret, secret[len("whsec_"):], "p4ssw0rd", "s3cr3tq", sig[3:]} {
			assert.NotContains(t, text, leak)
		}
	}
}

func TestURLCredentialsBecomeBasicAuth(t *testing.T) {
	tr := webhooktest.NewTransport()
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://alice:s3cret@r.test/hook", webhook.NewSecret())))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	rep.waitFinal(t, 1)
	req, err := http.NewRequest(http.MethodPost, "https://r.test/", nil)
	require.NoError(t, err)
	req.Header = tr.Requests()[0].Header
	user, pass, ok := req.BasicAuth()
	require.True(t, ok)
	assert.Equal(t, "alice", user)
	assert.Equal(t, "s3cret", pass)
}

// wrappedStore hides the memory store's type, so the Sender records through its
// asynchronous recorders as it does for durable stores.
type wrappedStore struct{ webhook.Store }

func TestAsynchronousRecordingDeliversAndRecordsEverything(t *testing.T) {
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	recv.Script(webhooktest.Status(503), webhooktest.Status(204))
	store := webhook.NewMemoryStore(0)
	rep := newReports()
	s := newSender(t, webhook.WithStore(wrappedStore{store}), rep.hooks(), webhook.WithWorkers(4),
		webhook.WithEndpoints(endpoint("ep", recv.URL, secret)),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{0}}))
	ctx := testCtx(t)
	const n = 40
	for range n {
		_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
		require.NoError(t, err)
	}
	rep.waitFinal(t, n)
	require.NoError(t, s.Close(ctx))
	res, err := store.List(ctx, webhook.ListParams{State: webhook.StateSucceeded, Limit: 1000})
	require.NoError(t, err)
	assert.Len(t, res.Deliveries, n)
	assert.Zero(t, store.Len(), "nothing left in flight")
	assert.Equal(t, n, recv.UniqueIDs())
}

// receiveN waits for n values on ch, failing with msg if ctx ends first.
func receiveN[T any](t *testing.T, ctx context.Context, ch <-chan T, n int, msg string) {
	t.Helper()
	for range n {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal(msg)
		}
	}
}

// claimWatch is a memory store that reports the IDs of the deliveries it hands out.
type claimWatch struct {
	*webhook.MemoryStore
	claimed chan string
}

func (c *claimWatch) Claim(ctx context.Context, p store.ClaimParams) ([]webhook.Delivery, error) {
	ds, err := c.MemoryStore.Claim(ctx, p)
	for _, d := range ds {
		c.claimed <- d.ID
	}
	return ds, err
}

// waitClaimed waits until the store has handed out the delivery id.
func (c *claimWatch) waitClaimed(t *testing.T, id string) {
	t.Helper()
	for {
		select {
		case got := <-c.claimed:
			if got == id {
				return
			}
		case <-testCtx(t).Done():
			t.Fatalf("delivery %s was never claimed", id)
		}
	}
}

// hangingServer answers 204, except that its first hang requests (every request, if hang
// is negative) wait until release is closed or the client gives up. started receives once
// per waiting request, after its body was read (a server notices a hang-up only then).
type hangingServer struct {
	*httptest.Server
	started  chan struct{}
	release  chan struct{}
	requests atomic.Int32
}

func newHangingServer(t *testing.T, hang int) *hangingServer {
	h := &hangingServer{started: make(chan struct{}, 64), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n := h.requests.Add(1); hang < 0 || int(n) <= hang {
			h.started <- struct{}{}
			select {
			case <-h.release:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close) // after the Sender's Close, which aborts the hanging attempts
	return h
}

func TestDeliveriesClaimedAheadAreHandedBackUnattemptedOnClose(t *testing.T) {
	srv := newHangingServer(t, 1)
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 16)}
	s, err := webhook.NewSender(webhook.WithStore(store), webhook.WithWorkers(1), loopback,
		webhook.WithEndpoints(endpoint("ep", srv.URL, webhook.NewSecret())))
	require.NoError(t, err)
	ctx := testCtx(t)
	first, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	second, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	<-srv.started                   // the one worker is busy with the first
	store.waitClaimed(t, second[0]) // and the second waits, claimed ahead for it
	closeCtx, cancel := context.WithCancel(ctx)
	cancel() // abort the hanging attempt; the worker then finds the second
	assert.ErrorIs(t, s.Close(closeCtx), context.Canceled)

	assert.Equal(t, int32(1), srv.requests.Load(), "only the first was attempted")
	d, err := store.Get(ctx, first[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StatePending, d.State)
	assert.Equal(t, 1, d.Attempts, "the aborted attempt is recorded")
	d, err = store.Get(ctx, second[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StatePending, d.State, "handed back, not left leased")
	assert.Zero(t, d.Attempts, "handed back without an attempt")
	assert.Empty(t, d.LeaseOwner)
}

func TestDeliveryWhoseLeaseWouldLapseMidAttemptIsReclaimed(t *testing.T) {
	srv := newHangingServer(t, 1)
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 16)}
	clk := webhooktest.NewClock(time.Now())
	core, logs := observer.New(zap.DebugLevel)
	rep := newReports()
	const timeout = 10 * time.Second
	s := newSender(t, webhook.WithStore(store), webhook.WithWorkers(1), webhook.WithClock(clk),
		webhook.WithTimeout(timeout), webhook.WithLeaseDuration(timeout+5*time.Second),
		webhook.WithLogger(zap.New(core)), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", srv.URL, webhook.NewSecret())))
	ctx := testCtx(t)
	_, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	second, err := s.Send(ctx, webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	<-srv.started
	store.waitClaimed(t, second[0])
	// The second has waited 6s behind the first: 9s of lease left, less than the 10s an
	// attempt may take.
	clk.Advance(6 * time.Second)
	close(srv.release)

	rep.waitFinal(t, 2)
	store.waitClaimed(t, second[0]) // claimed again, with a fresh lease
	assert.Equal(t, int32(2), srv.requests.Load())
	handedBack := logs.FilterMessageSnippet("lease would lapse").All()
	require.Len(t, handedBack, 1)
	assert.Equal(t, second[0], handedBack[0].ContextMap()["delivery_id"])
	d, err := store.Get(ctx, second[0])
	require.NoError(t, err)
	assert.Equal(t, webhook.StateSucceeded, d.State)
	assert.Equal(t, 1, d.Attempts, "the hand-back is not an attempt")
}

func TestFanOutFollowsEndpointChanges(t *testing.T) {
	store := webhook.NewMemoryStore(0)
	s := newSender(t, webhook.WithStore(store), webhook.WithTransport(webhooktest.NewTransport()),
		webhook.WithEndpoints(webhook.Endpoint{ID: "a", URL: "https://a.example/hook", Secret: webhook.NewSecret(), EventTypes: []string{"order.*"}}))
	ctx := testCtx(t)
	endpointsOf := func(typ string) []string {
		t.Helper()
		ids, err := s.Send(ctx, webhook.Event{Type: typ})
		require.NoError(t, err)
		var out []string
		for _, id := range ids {
			d, err := store.Get(ctx, id)
			require.NoError(t, err)
			out = append(out, d.EndpointID)
		}
		return out
	}
	assert.Equal(t, []string{"a"}, endpointsOf("order.created"))
	assert.Equal(t, []string{"a"}, endpointsOf("order.created"), "the same again, from the route cache")
	assert.Empty(t, endpointsOf("user.created"))

	require.NoError(t, s.AddEndpoint(webhook.Endpoint{ID: "b", URL: "https://b.example/hook", Secret: webhook.NewSecret(), EventTypes: []string{"order.created"}}))
	assert.Equal(t, []string{"a", "b"}, endpointsOf("order.created"), "a new endpoint gets the next event")
	require.NoError(t, s.DisableEndpoint("a"))
	assert.Equal(t, []string{"b"}, endpointsOf("order.created"), "a disabled endpoint gets none")
	require.NoError(t, s.UpdateEndpoint(webhook.Endpoint{ID: "b", URL: "https://b.example/hook", Secret: webhook.NewSecret(), EventTypes: []string{"user.*"}}))
	assert.Empty(t, endpointsOf("order.created"), "a changed filter applies at once")
	assert.Equal(t, []string{"b"}, endpointsOf("user.created"))
}

func TestLoneEndpointBurstsPastItsFairShareButLeavesAReserve(t *testing.T) {
	// Fair share 4 attempts; bursting, 7 (one worker in reserve): a bursting endpoint's
	// claims are its attempts, so none of them waits in the buffer for the reserve.
	const workers = 8
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 64)}
	s, err := webhook.NewSender(webhook.WithWorkers(workers), webhook.WithStore(store), loopback, webhook.WithEndpoints(
		webhook.Endpoint{ID: "busy", URL: hang.URL, Secret: secret, EventTypes: []string{"busy.*"}},
		webhook.Endpoint{ID: "other", URL: recv.URL, Secret: secret, EventTypes: []string{"other.*"}},
	))
	require.NoError(t, err)
	ctx := testCtx(t)
	for range 20 {
		_, err := s.Send(ctx, webhook.Event{Type: "busy.x"})
		require.NoError(t, err)
	}
	receiveN(t, ctx, store.claimed, workers-1, "the lone endpoint did not claim past its fair share")
	receiveN(t, ctx, hang.started, workers-1, "the lone endpoint did not run past its fair share")
	inFlight, err := store.List(ctx, webhook.ListParams{EndpointID: "busy", State: webhook.StateInFlight, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, inFlight.Deliveries, workers-1, "claimed: all but the reserve")

	// Work for another endpoint finds the reserved worker at once.
	_, err = s.Send(ctx, webhook.Event{Type: "other.x"})
	require.NoError(t, err)
	require.NoError(t, recv.WaitVerified(ctx, 1))

	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Close(closeCtx), context.DeadlineExceeded)
	assert.Len(t, hang.started, 0, "no attempt beyond the burst limit started")
}

// writeCounter counts Write calls on the connections a transport dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

func TestRequestHeadersAndBodyGoOutInOneWrite(t *testing.T) {
	// net/http flushes the headers in a write of their own unless it knows the body is
	// in memory: a second syscall on every attempt, and a second segment for the
	// receiver. The Sender's request body must be a kind it recognises.
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	var writes atomic.Int64
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{Conn: c, writes: &writes}, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	rep := newReports()
	s := newSender(t, webhook.WithEndpoints(endpoint("ep_1", recv.URL, secret)), webhook.WithTransport(tr),
		webhook.WithWorkers(1), rep.hooks())
	ctx := testCtx(t)
	const n = 5
	for i := range n {
		_, err := s.Send(ctx, webhook.Event{Type: "user.registered", Data: map[string]int{"n": i}})
		require.NoError(t, err)
	}
	for _, r := range rep.waitFinal(t, n) {
		require.Equal(t, webhook.Delivered, r.Verdict)
	}
	require.NoError(t, recv.WaitVerified(ctx, n))
	assert.Equal(t, int64(n), writes.Load(), "one write per request, headers and body together")
}

func TestIdleWorkersTakeNewWorkWhileClaimedAheadAttemptsHang(t *testing.T) {
	// The dispatcher holds off claiming while the claim-ahead buffer is full enough to
	// keep the workers busy. Deliveries it claimed in one batch and the workers then took
	// (all hanging) must not leave the idle workers waiting for an attempt to finish.
	const workers, hanging = 8, 6
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	recv := webhooktest.NewReceiver(t, secret)
	store := webhook.NewMemoryStore(0)
	ctx := testCtx(t)
	now := time.Now()
	ds := make([]webhook.Delivery, hanging)
	for i := range ds {
		ds[i] = webhook.Delivery{ID: fmt.Sprintf("dlv_%02d", i), EventID: fmt.Sprintf("evt_%02d", i), EventType: "slow.x",
			EndpointID: "slow", Version: webhook.DefaultVersion, Body: []byte(`{}`), State: webhook.StatePending,
			CreatedAt: now, QueuedAt: now, NextAttemptAt: now, UpdatedAt: now}
	}
	require.NoError(t, store.Enqueue(ctx, ds)) // due before the Sender starts: one claim takes them all
	rep := newReports()
	// No attempt ends, and no poll comes, on its own before the test's deadline: only the
	// Sender's wake-ups can get the new delivery out.
	s := newSender(t, webhook.WithStore(store), webhook.WithWorkers(workers), webhook.WithEndpointConcurrency(workers),
		webhook.WithTimeout(time.Minute), webhook.WithLeaseDuration(2*time.Minute), webhook.WithPollInterval(time.Minute),
		rep.hooks(), webhook.WithEndpoints(
			webhook.Endpoint{ID: "slow", URL: hang.URL, Secret: secret, EventTypes: []string{"slow.*"}},
			webhook.Endpoint{ID: "fast", URL: recv.URL, Secret: secret, EventTypes: []string{"fast.*"}},
		))
	receiveN(t, ctx, hang.started, hanging, "the claimed deliveries were not all attempted")
	_, err := s.Send(ctx, webhook.Event{Type: "fast.x"})
	require.NoError(t, err)
	require.NoError(t, recv.WaitVerified(ctx, 1), "an idle worker delivers while the others hang")
	close(hang.release)
	rep.waitFinal(t, hanging+1)
}

func TestALoneEnabledEndpointMayUseEveryWorker(t *testing.T) {
	// The reserve a bursting endpoint leaves is for other endpoints' work; with no other
	// endpoint enabled it would only idle, so the lone endpoint gets every worker.
	const workers = 8
	hang := newHangingServer(t, -1)
	secret := webhook.NewSecret()
	store := &claimWatch{MemoryStore: webhook.NewMemoryStore(0), claimed: make(chan string, 64)}
	s, err := webhook.NewSender(webhook.WithWorkers(workers), webhook.WithStore(store), loopback,
		webhook.WithTimeout(time.Minute), webhook.WithLeaseDuration(2*time.Minute), // no attempt ends on its own
		webhook.WithEndpoints(
			webhook.Endpoint{ID: "busy", URL: hang.URL, Secret: secret},
			webhook.Endpoint{ID: "off", URL: hang.URL, Secret: secret, Disabled: true},
		))
	require.NoError(t, err)
	closeSoon := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		return s.Close(ctx) // aborts the hanging attempts
	}
	t.Cleanup(func() { _ = closeSoon() }) // also when the test fails early
	ctx := testCtx(t)
	for range 3 * workers {
		_, err := s.Send(ctx, webhook.Event{Type: "busy.x"})
		require.NoError(t, err)
	}
	receiveN(t, ctx, hang.started, workers, "the lone endpoint did not get every worker")
	receiveN(t, ctx, store.claimed, 2*workers, "the lone endpoint did not fill the claim-ahead buffer")
	inFlight, err := store.List(ctx, webhook.ListParams{EndpointID: "busy", State: webhook.StateInFlight, Limit: 100})
	require.NoError(t, err)
	assert.Len(t, inFlight.Deliveries, 2*workers, "claimed: every worker and the whole buffer")

	assert.ErrorIs(t, closeSoon(), context.DeadlineExceeded)
}

// Many callers contend for a small queue, and some give up while they wait: every Send
// that returned IDs is delivered, and every caller returns, with no help from the room
// poll (the Sender's clock never moves, so it never fires). A wake-up for room lost
// while others wait, or a baton left with a caller that gave up, would hang a caller.
func TestSendsContendingForRoomAllGetInWithoutThePoll(t *testing.T) {
	ctx := testCtx(t)
	var delivered atomic.Int64
	progress := make(chan struct{}, 1)
	s := newSender(t, webhook.WithStore(webhook.NewMemoryStore(4)), webhook.WithWorkers(4),
		webhook.WithClock(webhooktest.NewClock(time.Now())), webhook.WithPollInterval(time.Hour),
		webhook.WithTransport(webhooktest.NewTransport()),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithHooks(webhook.Hooks{OnAttempt: func(a webhook.AttemptReport) {
			if a.Final {
				delivered.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}}))
	const callers, each = 32, 40
	var accepted, gaveUp atomic.Int64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				sctx, cancel := context.WithCancel(ctx)
				if (c+i)%5 == 0 {
					// Given up on at some point while it runs, from another goroutine.
					go cancel()
				}
				_, err := s.Send(sctx, webhook.Event{Type: "a.b"})
				cancel()
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, context.Canceled):
					// Before it waited (the store checks the context), or while it
					// waited (wrapped in ErrQueueFull).
					gaveUp.Add(1)
				default:
					t.Errorf("Send: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(callers*each), accepted.Load()+gaveUp.Load())
	assert.Greater(t, accepted.Load(), int64(callers*each/2))
	for delivered.Load() < accepted.Load() {
		select {
		case <-progress:
		case <-ctx.Done():
			t.Fatalf("%d of %d accepted deliveries were delivered", delivered.Load(), accepted.Load())
		}
	}
	assert.Equal(t, accepted.Load(), delivered.Load())
}

// roomElsewhere is a Sender, on a fake clock with a poll of a minute, whose memory store
// of capacity 2 another process holds whole: two deliveries due in an hour (so this
// Sender's dispatcher leaves them), which it has claimed, leased for longer than the
// test runs on the fake clock.
type roomElsewhere struct {
	t       *testing.T
	ctx     context.Context
	clk     *webhooktest.Clock
	store   *fullWatch
	s       *webhook.Sender
	due     time.Time
	claimed []webhook.Delivery
}

// fullWatch is a memory store that reports each Enqueue it refuses for want of room.
type fullWatch struct {
	*webhook.MemoryStore
	full chan struct{}
}

func (w *fullWatch) Enqueue(ctx context.Context, ds []webhook.Delivery) error {
	err := w.MemoryStore.Enqueue(ctx, ds)
	if errors.Is(err, webhook.ErrQueueFull) {
		w.full <- struct{}{}
	}
	return err
}

func newRoomElsewhere(t *testing.T, tr http.RoundTripper) *roomElsewhere {
	t.Helper()
	start := time.Now()
	r := &roomElsewhere{t: t, ctx: testCtx(t), clk: webhooktest.NewClock(start),
		store: &fullWatch{MemoryStore: webhook.NewMemoryStore(2), full: make(chan struct{}, 64)}, due: start.Add(time.Hour)}
	r.s = newSender(t, webhook.WithStore(r.store), webhook.WithClock(r.clk), webhook.WithTransport(tr),
		webhook.WithPollInterval(time.Minute), webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())))
	require.NoError(t, r.store.Enqueue(r.ctx, []webhook.Delivery{storetest.Delivery("dlv_elsewhere_0", "elsewhere", r.due),
		storetest.Delivery("dlv_elsewhere_1", "elsewhere", r.due)}))
	claimed, err := r.store.Claim(r.ctx, store.ClaimParams{Now: r.due, Limit: 2, Owner: "other", LeaseUntil: r.due.Add(1000 * time.Hour)})
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	r.claimed = claimed
	return r
}

// waiting waits until the store has refused n Enqueues for want of room.
func (r *roomElsewhere) waiting(n int) {
	r.t.Helper()
	for range n {
		select {
		case <-r.store.full:
		case <-r.ctx.Done():
			r.t.Fatalf("no Send found the store full")
		}
	}
}

// send Sends in a goroutine of its own and returns where its error will come.
func (r *roomElsewhere) send(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { _, err := r.s.Send(ctx, webhook.Event{Type: "a.b"}); done <- err }()
	return done
}

// finishElsewhere has the other process finish its i'th delivery, making room.
func (r *roomElsewhere) finishElsewhere(i int) {
	r.t.Helper()
	require.NoError(r.t, r.store.Record(r.ctx, store.RecordParams{DeliveryID: r.claimed[i].ID, Owner: "other", Now: r.due,
		Attempt: &webhook.Attempt{StartedAt: r.due, StatusCode: 204}, State: webhook.StateSucceeded}))
}

// admitted waits for the Send whose error comes on done to get in.
func (r *roomElsewhere) admitted(done <-chan error, what string) {
	r.t.Helper()
	select {
	case err := <-done:
		require.NoError(r.t, err)
	case <-r.ctx.Done():
		r.t.Fatalf("%s was never let in", what)
	}
}

// Room made by another process sharing the store reaches a Send waiting for it at its
// poll, whatever the other waiters do.
func TestSendsWaitingForRoomMadeElsewhereGetInAtThePoll(t *testing.T) {
	r := newRoomElsewhere(t, webhooktest.NewTransport())
	ctxA, cancelA := context.WithCancel(r.ctx)
	a := r.send(ctxA)
	b := r.send(r.ctx)
	r.waiting(2)

	// One waiter gives up; the other still polls.
	cancelA()
	errA := <-a
	assert.ErrorIs(t, errA, webhook.ErrQueueFull)
	assert.ErrorIs(t, errA, context.Canceled)

	// The other process finishes one; the poll finds the room.
	r.finishElsewhere(0)
	r.clk.Advance(time.Minute)
	r.admitted(b, "the Send waiting for room")
}
