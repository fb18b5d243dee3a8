package webhook_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

func TestOrderedEndpointDeliversInSendOrder(t *testing.T) {
	t.Parallel()
	tr := webhooktest.NewTransport()
	// The first request fails twice over, the rest succeed.
	tr.Script("https://fifo.test/", webhooktest.Status(500), webhooktest.Status(503), webhooktest.Status(200))
	clk := webhooktest.NewClock(time.Now())
	rep := newReports()
	s := newSender(t, webhook.WithTransport(tr), webhook.WithClock(clk), rep.hooks(), webhook.WithWorkers(8),
		webhook.WithEndpoints(webhook.Endpoint{ID: "fifo", URL: "https://fifo.test/", Secret: webhook.NewSecret(), Ordered: true}),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Minute}}))
	ctx := testCtx(t)
	var sent []string
	for i := range 6 {
		ids, err := s.Send(ctx, webhook.Event{Type: "seq.item", Data: map[string]int{"n": i}})
		require.NoError(t, err)
		d, err := s.Delivery(ctx, ids[0])
		require.NoError(t, err)
		sent = append(sent, d.EventID)
	}
	a := rep.next(t)
	require.Equal(t, 500, a.Attempt.StatusCode)
	// The later five are due, but wait behind the first until its retry.
	select {
	case a := <-rep.ch:
		t.Fatalf("attempt of %s while the head waits for its retry", a.Delivery.EventID)
	default:
	}
	clk.Advance(time.Minute)
	require.Equal(t, 503, rep.next(t).Attempt.StatusCode)
	clk.Advance(time.Minute)
	rep.waitFinal(t, 6)

	var got []string
	for _, r := range tr.Requests() {
		var env webhook.Envelope
		require.NoError(t, json.Unmarshal(r.Body, &env))
		got = append(got, env.ID)
	}
	want := append([]string{sent[0], sent[0]}, sent...)
	assert.Equal(t, want, got, "strictly in send order, the head retried before anything after it")
}
