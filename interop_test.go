package webhook_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// TestStandardWebhooksReferenceLibraryVerifiesEveryRequest points a Sender at a receiver
// that verifies with the Standard Webhooks project's own Go library, written by someone
// else: every request, including retries (fresh timestamps) and rotated secrets (several
// signatures in one header), must pass it.
func TestStandardWebhooksReferenceLibraryVerifiesEveryRequest(t *testing.T) {
	t.Parallel()
	current, previous := webhook.NewSecret(), webhook.NewSecret()
	verifiers := map[string]*standardwebhooks.Webhook{}
	for _, s := range []string{current, previous} {
		wh, err := standardwebhooks.NewWebhook(s)
		require.NoError(t, err)
		verifiers[s] = wh
	}
	var mu sync.Mutex
	var failures []string
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		for name, wh := range verifiers {
			if err := wh.Verify(body, r.Header); err != nil {
				failures = append(failures, name[:10]+": "+err.Error())
			}
		}
		if requests%3 == 1 { // make every third request a retry
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	rep := newReports()
	s := newSender(t, rep.hooks(), webhook.WithWorkers(4),
		webhook.WithEndpoints(webhook.Endpoint{ID: "ep", URL: srv.URL, Secret: current, PreviousSecrets: []string{previous}}),
		webhook.WithRetryPolicy(webhook.RetryPolicy{Schedule: webhook.FixedSchedule{time.Millisecond}}))
	ctx := testCtx(t)
	const n = 20
	for i := range n {
		_, err := s.Send(ctx, webhook.Event{Type: "user.created", Data: map[string]any{"i": i, "name": "Zoë \"quoted\" <tag>"}})
		require.NoError(t, err)
	}
	for _, r := range rep.waitFinal(t, n) {
		assert.Equal(t, webhook.StateSucceeded, r.Delivery.State)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, failures)
	assert.Greater(t, requests, n, "some requests were retries")
}
