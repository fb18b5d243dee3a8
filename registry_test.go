package webhook_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/webhooktest"
)

// endpointsN returns n endpoints named prefix-0 ... prefix-(n-1), subscribed to the
// event types prefix.*.
func endpointsN(prefix string, n int) []webhook.Endpoint {
	secret := webhook.NewSecret()
	eps := make([]webhook.Endpoint, n)
	for i := range eps {
		eps[i] = webhook.Endpoint{ID: fmt.Sprintf("%s-%d", prefix, i), URL: "https://r.test/", Secret: secret,
			EventTypes: []string{prefix + ".*"}}
	}
	return eps
}

// bytesPerAdd is the memory allocated by each of n AddEndpoint and UpdateEndpoint calls
// made one at a time on a Sender that already has existing endpoints.
func bytesPerAdd(t *testing.T, existing, n int) float64 {
	s := newSender(t, webhook.WithTransport(webhooktest.NewTransport()), webhook.WithEndpoints(endpointsN("old", existing)...))
	// A fan-out cached for a type the new endpoints match: kept up to date, not rebuilt.
	_, err := s.Send(testCtx(t), webhook.Event{Type: "new.created"})
	require.NoError(t, err)
	adds := endpointsN("new", n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, ep := range adds {
		require.NoError(t, s.AddEndpoint(ep))
		ep.URL = "https://r.test/v2"
		require.NoError(t, s.UpdateEndpoint(ep))
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(n)
}

// Adding or updating one endpoint costs about the same with 100,000 endpoints as with
// ten, so a service can load its customers' endpoints one call at a time, or add them
// as customers sign up. Measured in bytes allocated, which timing noise cannot move.
func TestAddingAnEndpointCostsTheSameAtAnySize(t *testing.T) {
	small := bytesPerAdd(t, 10, 500)
	large := bytesPerAdd(t, 100_000, 500)
	t.Logf("bytes allocated per add and update: %.0f with 10 endpoints, %.0f with 100,000", small, large)
	assert.Less(t, large, 3*small)
}

// BenchmarkAddEndpoint adds endpoints one call at a time to a Sender that holds n
// already.
func BenchmarkAddEndpoint(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := webhook.NewSender(webhook.WithTransport(webhooktest.NewTransport()), webhook.WithEndpoints(endpointsN("old", n)...))
			require.NoError(b, err)
			defer s.Close(b.Context())
			adds := endpointsN("new", b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := s.AddEndpoint(adds[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// SendTo naming an endpoint twice makes one delivery.
func TestSendToNamingAnEndpointTwiceMakesOneDelivery(t *testing.T) {
	t.Parallel()
	s := newSender(t, webhook.WithTransport(webhooktest.NewTransport()), webhook.WithEndpoints(endpointsN("ep", 2)...))
	ids, err := s.SendTo(testCtx(t), webhook.Event{Type: "ep.created"}, "ep-0", "ep-1", "ep-0")
	require.NoError(t, err)
	assert.Len(t, ids, 2)
}
