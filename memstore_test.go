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
	"github.com/hooksmith/webhook/storetest"
)

// The memory store's ID index keys its maps by a hash of each ID and keeps an ID whose
// hash is taken apart; with every hash alike (0 bits) or four of them (2 bits), the
// whole Store contract still holds.
func TestMemoryStoreWithCollidingIDHashes(t *testing.T) {
	for _, bits := range []int{0, 2} {
		t.Run(fmt.Sprint("bits=", bits), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) webhook.Store { return webhook.NewMemoryStoreForTests(-1, bits, 1<<16) })
		})
	}
}

// The memory store's intern tables (endpoint, type and version; lease owners) are
// rebuilt from the live records when they reach their bound: with a bound of two, they
// are rebuilt on nearly every write, and the Store contract still holds.
func TestMemoryStoreRebuildingItsInternTables(t *testing.T) {
	storetest.Run(t, func(t *testing.T) webhook.Store { return webhook.NewMemoryStoreForTests(-1, 64, 2) })
}

// Direct Enqueues of the same IDs from many goroutines at once, with Claims absorbing
// meanwhile: each ID is stored once, and every other Enqueue of it is refused as a
// duplicate.
func TestMemoryStoreConcurrentEnqueuesOfTheSameIDs(t *testing.T) {
	for _, bits := range []int{64, 0} {
		m := webhook.NewMemoryStoreForTests(-1, bits, 1<<16)
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
					case errors.Is(err, webhook.ErrDuplicateDelivery):
						refused.Add(1)
					default:
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			for range 50 {
				_, err := m.Claim(t.Context(), webhook.ClaimParams{Now: now.Add(-time.Hour), Limit: 1, Owner: "o", LeaseUntil: now})
				assert.NoError(t, err)
			}
		})
		wg.Wait()
		assert.EqualValues(t, ids, stored.Load(), "hash bits %d", bits)
		assert.EqualValues(t, ids*(callers-1), refused.Load())
		assert.Equal(t, ids, m.Len())
		res, err := m.List(t.Context(), webhook.ListParams{Limit: 1000})
		require.NoError(t, err)
		assert.Len(t, res.Deliveries, ids)
	}
}
