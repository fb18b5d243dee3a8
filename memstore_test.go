package webhook_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/store"
	"github.com/hooksmith/webhook/storetest"
)

// Enqueues of the same IDs from many goroutines at once, with Claims meanwhile: each ID
// is stored once, and every other Enqueue of it is refused as a duplicate.
func TestMemoryStoreConcurrentEnqueuesOfTheSameIDs(t *testing.T) {
	t.Parallel()
	{
		m := webhook.NewMemoryStore(-1)
		now := time.Unix(1_700_000_000, 0)
		const ids, callers = 200, 8
		var stored, refused atomic.Int64
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				for i := range ids {
					id := fmt.Sprintf("dlv_%04d", (i*7+c*13)%ids)
					err := m.Enqueue(t.Context(), []webhook.Delivery{storetest.Delivery(id, "ep", now)})
					switch {
					case err == nil:
						stored.Add(1)
					case errors.Is(err, store.ErrDuplicateDelivery):
						refused.Add(1)
					default:
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			for range 50 {
				_, err := m.Claim(t.Context(), store.ClaimParams{Now: now.Add(-time.Hour), Limit: 1, Owner: "o", LeaseUntil: now})
				assert.NoError(t, err)
			}
		})
		wg.Wait()
		assert.EqualValues(t, ids, stored.Load())
		assert.EqualValues(t, ids*(callers-1), refused.Load())
		assert.Equal(t, ids, m.Len())
		res, err := m.List(t.Context(), webhook.ListParams{Limit: 1000})
		require.NoError(t, err)
		assert.Len(t, res.Deliveries, ids)
	}
}
