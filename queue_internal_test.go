package webhook

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeliveryFIFOKeepsOrderAcrossReuse(t *testing.T) {
	var q deliveryFIFO
	next, want := 0, 0
	push := func(n int) {
		for range n {
			q.push(Delivery{ID: fmt.Sprint(next)})
			next++
		}
	}
	pop := func(n int) {
		for range n {
			require.Equal(t, fmt.Sprint(want), q.pop().ID)
			want++
		}
	}
	push(5)
	pop(3)
	push(20) // compacts the popped front away as it grows
	pop(10)
	push(7)
	pop(q.len())
	assert.Zero(t, q.len())
	assert.Equal(t, next, want)
	push(2) // an emptied queue is used again from its start
	assert.Zero(t, q.head)
	pop(2)
	for _, d := range q.items[:cap(q.items)] {
		assert.Nil(t, d.Body, "popped deliveries are not kept alive")
	}
}
