package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestRetriesFollowScheduleWithInjectedClock(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

func TestNetworkErrorsAreRetried(t *testing.T) {
	t.Parallel()
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
