package webhook

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// NewEventID returns a new unique, time-sortable event ID: "msg_" and 26 characters of
// Crockford base32 holding 48 bits of milliseconds, then 16 bits random per process and
// a per-process random base plus a counter (see newID).
func NewEventID() string { return newID("msg_", time.Now()) }

// newDeliveryID returns a new unique, time-sortable delivery ID ("dlv_...").
func newDeliveryID(now time.Time) string { return newID("dlv_", now) }

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IDs made one after another in this process are strictly increasing, which is what
// lets an ordered (FIFO) endpoint take its deliveries by ID: the 80 bits after the
// milliseconds are a per-process random prefix and a per-process random base plus a
// counter, so within one millisecond later IDs are larger, and no lock is needed.
// (A clock stepping back gives IDs of the earlier time, as it must for the time an ID
// encodes to stay true.) Uniqueness across processes rests on the 79 random bits.
var (
	idPrefix = rand.Uint64() >> 48 // 16 random bits
	idBase   = rand.Uint64() >> 1  // 63 random bits: the counter cannot wrap in practice
	idSeq    atomic.Uint64
)

// newID returns a new ID: prefix, then 26 base32 digits of 128 bits (48 bits of
// milliseconds, then 80 bits; 26 digits hold 130).
func newID(prefix string, now time.Time) string {
	const digits = 26
	var buf [8 + digits]byte
	b := append(buf[:0], prefix...)
	n := len(b)
	b = b[:n+digits]
	hi := uint64(now.UnixMilli())<<16 | idPrefix
	lo := idBase + idSeq.Add(1)
	for i := digits - 1; i >= 0; i-- {
		b[n+i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(b)
}

// newDeliveryIDs returns n new delivery IDs, each a string of its own: a store may keep a
// delivery's ID as long as the delivery, and IDs sharing one allocation would keep all of
// it alive.
func newDeliveryIDs(n int, now time.Time) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newDeliveryID(now)
	}
	return ids
}
