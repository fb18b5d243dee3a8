package webhook_test

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestDefaultScheduleApproximatesStandardWebhooks(t *testing.T) {
	t.Parallel()
	// The un-jittered intervals: 5s, 35s, 245s, ~28.6m, ~3.3h, then the 10h cap.
	base := []time.Duration{5 * time.Second, 35 * time.Second, 245 * time.Second,
		1715 * time.Second, 12005 * time.Second, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	for n := 1; n <= len(base); n++ {
		want := base[n-1]
		lo := time.Duration(float64(want) * (1 - webhook.DefaultRandomization))
		hi := time.Duration(float64(want) * (1 + webhook.DefaultRandomization))
		for range 200 {
			got := webhook.DefaultSchedule().Delay(n)
			if !assert.True(t, got >= lo && got <= hi, "retry %d: %s outside [%s, %s]", n, got, lo, hi) {
				break
			}
		}
	}
}

func TestExponentialScheduleWithoutJitterIsExact(t *testing.T) {
	t.Parallel()
	s := webhook.ExponentialSchedule{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 10 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		assert.Equal(t, w*time.Second, s.Delay(i+1), "retry %d", i+1)
	}
	// A huge retry number neither overflows nor loops forever.
	assert.Equal(t, 10*time.Second, s.Delay(math.MaxInt32))
}

func TestFixedSchedule(t *testing.T) {
	t.Parallel()
	s := webhook.StandardWebhooksSchedule()
	assert.Equal(t, 5*time.Second, s.Delay(1))
	assert.Equal(t, 5*time.Minute, s.Delay(2))
	assert.Equal(t, 10*time.Hour, s.Delay(7))
	assert.Equal(t, 10*time.Hour, s.Delay(100), "the last delay repeats")
	assert.Equal(t, 5*time.Second, s.Delay(0), "retry numbers below 1 use the first delay")
	assert.Zero(t, webhook.FixedSchedule{}.Delay(3))
}

func TestDefaultClassifier(t *testing.T) {
	t.Parallel()
	perm := &webhook.PermanentError{Err: errors.New("refused")}
	cases := []struct {
		status int
		err    error
		want   webhook.Verdict
	}{
		{200, nil, webhook.Delivered}, {299, nil, webhook.Delivered},
		{0, errors.New("reset"), webhook.Retry}, {0, perm, webhook.Permanent},
		{0, fmt.Errorf("dial: %w", webhook.ErrDestinationBlocked), webhook.Permanent},
		{300, nil, webhook.Retry}, {400, nil, webhook.Retry}, {401, nil, webhook.Retry}, {403, nil, webhook.Retry},
		{404, nil, webhook.Retry}, {408, nil, webhook.Retry}, {410, nil, webhook.Gone}, {425, nil, webhook.Retry},
		{429, nil, webhook.Retry}, {500, nil, webhook.Retry}, {501, nil, webhook.Retry},
		{599, nil, webhook.Retry}, {100, nil, webhook.Retry},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, webhook.DefaultClassifier(tc.status, tc.err), "status %d err %v", tc.status, tc.err)
	}
	assert.ErrorIs(t, perm, perm.Err)
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 0, true}, // RFC 850, in the past
		{"99999999999999999999999", time.Duration(math.MaxInt64), true},
		{"9999999999999", time.Duration(math.MaxInt64), true},
		{"", 0, false}, {"-5", 0, false}, {"1.5", 0, false}, {"soon", 0, false},
	}
	for _, tc := range cases {
		got, ok := webhook.ParseRetryAfter(tc.in, now)
		assert.Equal(t, tc.ok, ok, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

func TestMaxAgeEndsRetries(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	tr.Script("https://r.test/", webhooktest.Status(503))
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), rep.hooks(),
		webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Hour}, MaxAge: 30 * time.Minute}))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	assert.NoError(t, err)
	a := rep.next(t)
	assert.True(t, a.Final, "the next retry would fall past MaxAge")
	assert.Equal(t, webhook.StateFailed, a.Delivery.State)
}
