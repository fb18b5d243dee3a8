package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

// guarded builds a Sender whose destination guard is on and allows only a documentation
// range nothing listens on, so loopback is refused.
func guarded(t *testing.T, rep *reports, url string, opts ...webhook.Option) *webhook.Sender {
	opts = append(opts, rep.hooks(), webhook.WithAllowedNetworks(netip.MustParsePrefix("192.0.2.0/24")),
		webhook.WithEndpoints(endpoint("ep", url, webhook.NewSecret())))
	return startSender(t, opts...)
}

func TestGuardRefusesLoopbackByAddressAndByName(t *testing.T) {
	t.Parallel()
	recv := webhooktest.NewUnverifiedReceiver(t)
	for _, url := range []string{recv.URL, "http://localhost:" + recv.URL[len("http://127.0.0.1:"):]} {
		t.Run(url, func(t *testing.T) {
			rep := newReports()
			s := guarded(t, rep, url)
			_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
			require.NoError(t, err)
			a := rep.next(t)
			assert.True(t, a.Final, "a refused destination is permanent")
			assert.Equal(t, webhook.Permanent, a.Verdict)
			assert.Equal(t, webhook.StateFailed, a.Delivery.State)
			assert.Contains(t, a.Attempt.Error, "refusing to connect to 127.0.0.1")
			assert.Contains(t, a.Attempt.Error, "WithAllowedNetworks")
		})
	}
	assert.Empty(t, recv.Deliveries(), "nothing reached the receiver")
}

func TestGuardAllowsListedNetwork(t *testing.T) {
	t.Parallel()
	recv := webhooktest.NewUnverifiedReceiver(t)
	rep := newReports()
	s := guarded(t, rep, recv.URL, webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	assert.Equal(t, webhook.StateSucceeded, rep.next(t).Delivery.State)
}

func TestRedirectToMetadataIsNotFollowed(t *testing.T) {
	t.Parallel()
	var metadataHits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/meta-data" {
			metadataHits++
		}
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	rep := newReports()
	s := guarded(t, rep, srv.URL, webhook.WithAllowedNetworks(netip.MustParsePrefix("127.0.0.0/8")))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, http.StatusFound, a.Attempt.StatusCode)
	assert.Equal(t, webhook.StatePending, a.Delivery.State, "3xx is retried, never followed")
	assert.Zero(t, metadataHits)
}

func TestHTTPSOnly(t *testing.T) {
	t.Parallel()
	_, err := webhook.NewSender(webhook.WithHTTPSOnly(), webhook.WithEndpoints(endpoint("ep", "http://r.test/", webhook.NewSecret())))
	assert.ErrorIs(t, err, webhook.ErrInvalidEndpoint)
	s := newSender(t, webhook.WithHTTPSOnly(), webhook.WithEndpoints(endpoint("ep", "https://r.test/", webhook.NewSecret())))
	assert.ErrorIs(t, s.AddEndpoint(endpoint("ep2", "http://r.test/", webhook.NewSecret())), webhook.ErrInvalidEndpoint)
}

func TestGuardIsOnByDefault(t *testing.T) {
	t.Parallel()
	recv := webhooktest.NewUnverifiedReceiver(t)
	rep := newReports()
	s := startSender(t, rep.hooks(), webhook.WithEndpoints(endpoint("ep", recv.URL, webhook.NewSecret())))
	_, err := s.Send(testCtx(t), webhook.Event{Type: "a.b"})
	require.NoError(t, err)
	a := rep.next(t)
	assert.Equal(t, webhook.StateFailed, a.Delivery.State)
	assert.Contains(t, a.Attempt.Error, "refusing to connect to 127.0.0.1")
	assert.Empty(t, recv.Deliveries())
}
