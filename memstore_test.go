package webhook_test

import (
	"testing"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/storetest"
)

// The memory store's ID index keys its maps by a hash of each ID and keeps an ID whose
// hash is taken apart; with every hash alike (0 bits) or four of them (2 bits), the
// whole Store contract still holds.
func TestMemoryStoreWithCollidingIDHashes(t *testing.T) {
	for _, bits := range []int{0, 2} {
		t.Run("bits="+string(rune('0'+bits)), func(t *testing.T) {
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
