package webhook_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestInvalidEventsAreRejectedWithTypedErrors(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
