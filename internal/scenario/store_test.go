package scenario_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
)

// eventually checks cond every few milliseconds until it holds, failing t when ctx ends
// first. It is for states no signal announces, such as a delivery leaving the store's
// in-flight state without an attempt.
func eventually(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: not reached in time", what)
		}
	}
}

// deliveries lists every delivery in the Sender's store matching p.
func deliveries(ctx context.Context, t testing.TB, s *webhook.Sender, p webhook.ListParams) []webhook.Delivery {
	t.Helper()
	var out []webhook.Delivery
	for {
		page, err := s.Deliveries(ctx, p)
		require.NoError(t, err)
		out = append(out, page.Deliveries...)
		if page.Next == "" {
			return out
		}
		p.Cursor = page.Next
	}
}

// inFlight counts the deliveries leased to a worker now.
func inFlight(ctx context.Context, t testing.TB, s *webhook.Sender) int {
	return len(deliveries(ctx, t, s, webhook.ListParams{State: webhook.StateInFlight}))
}

// failedIDs returns the IDs of an endpoint's failed deliveries.
func failedIDs(ctx context.Context, t testing.TB, s *webhook.Sender, endpointID string) []string {
	t.Helper()
	var ids []string
	for _, d := range deliveries(ctx, t, s, webhook.ListParams{EndpointID: endpointID, State: webhook.StateFailed}) {
		ids = append(ids, d.ID)
	}
	return ids
}

// countByState counts deliveries by state.
func countByState(ctx context.Context, t testing.TB, s *webhook.Sender) map[webhook.State]int {
	out := map[webhook.State]int{}
	for _, d := range deliveries(ctx, t, s, webhook.ListParams{}) {
		out[d.State]++
	}
	return out
}
