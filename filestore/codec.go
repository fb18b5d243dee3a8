package filestore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hooksmith/webhook"
)

// The file holds records in a compact binary form: a format byte, then varints and
// length-prefixed strings. It is several times smaller and faster than JSON or gob, and
// a delivery's encoding is its body plus some sixty bytes.
const (
	deliveryFormat = 1
	attemptFormat  = 1
)

// storedDelivery is a Delivery as the file keeps it: its ID is the record's key, and
// logged counts every attempt in its log, across requeues, to number the next one.
type storedDelivery struct {
	webhook.Delivery
	logged int
}

func stateCode(s webhook.State) byte {
	switch s {
	case webhook.StatePending:
		return 1
	case webhook.StateInFlight:
		return 2
	case webhook.StateSucceeded:
		return 3
	case webhook.StateFailed:
		return 4
	}
	return 0
}

var stateByCode = [...]webhook.State{1: webhook.StatePending, 2: webhook.StateInFlight, 3: webhook.StateSucceeded, 4: webhook.StateFailed}

func encodeDelivery(buf []byte, d *storedDelivery) []byte {
	buf = append(buf, deliveryFormat, stateCode(d.State))
	buf = appendString(buf, d.EventID)
	buf = appendString(buf, d.EventType)
	buf = appendString(buf, d.EndpointID)
	buf = appendString(buf, d.Version)
	buf = appendString(buf, d.LeaseOwner)
	buf = appendString(buf, d.LastError)
	buf = binary.AppendUvarint(buf, uint64(d.Attempts))
	buf = binary.AppendUvarint(buf, uint64(d.logged))
	buf = binary.AppendVarint(buf, int64(d.LastStatus))
	buf = appendTime(buf, d.CreatedAt)
	buf = appendTime(buf, d.QueuedAt)
	buf = appendTime(buf, d.NextAttemptAt)
	buf = appendTime(buf, d.UpdatedAt)
	buf = appendTime(buf, d.LeaseExpiresAt)
	return appendBytes(buf, d.Body) // last, so a caller can skip it cheaply
}

// deliverySize is a generous estimate of d's encoded size, to allocate once.
func deliverySize(d *webhook.Delivery) int {
	return 2 + len(d.EventID) + len(d.EventType) + len(d.EndpointID) + len(d.Version) +
		len(d.LeaseOwner) + len(d.LastError) + len(d.Body) + 6*3 + 3*10 + 5*16 + 3
}

// decodeDelivery decodes a record. The strings are copies; Body is copied only when
// withBody is set, so scans that filter on metadata do not copy every body.
func decodeDelivery(id []byte, b []byte, withBody bool) (storedDelivery, error) {
	var d storedDelivery
	r := reader{b: b}
	if r.byte() != deliveryFormat {
		return d, fmt.Errorf("%w: delivery %q has an unknown format; was the file written by a newer version?", ErrCorrupt, id)
	}
	code := r.byte()
	if int(code) >= len(stateByCode) || stateByCode[code] == "" {
		r.fail()
	} else {
		d.State = stateByCode[code]
	}
	d.ID = string(id)
	d.EventID = r.string()
	d.EventType = r.string()
	d.EndpointID = r.string()
	d.Version = r.string()
	d.LeaseOwner = r.string()
	d.LastError = r.string()
	d.Attempts = int(r.uvarint())
	d.logged = int(r.uvarint())
	d.LastStatus = int(r.varint())
	d.CreatedAt = r.time()
	d.QueuedAt = r.time()
	d.NextAttemptAt = r.time()
	d.UpdatedAt = r.time()
	d.LeaseExpiresAt = r.time()
	if withBody {
		d.Body = r.bytes()
	}
	if r.bad {
		return d, fmt.Errorf("%w: the record of delivery %q cannot be decoded", ErrCorrupt, id)
	}
	return d, nil
}

// encodeAttempt encodes a's result; its delivery and number are in the record's key.
func encodeAttempt(a *webhook.Attempt) []byte {
	buf := make([]byte, 0, 1+3*10+16+len(a.Error)+len(a.ResponseBody)+6)
	buf = append(buf, attemptFormat)
	buf = appendTime(buf, a.StartedAt)
	buf = binary.AppendVarint(buf, int64(a.Duration))
	buf = binary.AppendVarint(buf, int64(a.StatusCode))
	buf = appendString(buf, a.Error)
	return appendBytes(buf, a.ResponseBody)
}

func decodeAttempt(deliveryID string, number int, b []byte) (webhook.Attempt, error) {
	a := webhook.Attempt{DeliveryID: deliveryID, Number: number}
	r := reader{b: b}
	if r.byte() != attemptFormat {
		r.fail()
	}
	a.StartedAt = r.time()
	a.Duration = time.Duration(r.varint())
	a.StatusCode = int(r.varint())
	a.Error = r.string()
	a.ResponseBody = r.bytes()
	if r.bad {
		return a, fmt.Errorf("%w: attempt %d of delivery %q", ErrCorrupt, number, deliveryID)
	}
	return a, nil
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// appendBytes keeps nil apart from empty: the length is stored plus one, zero for nil.
func appendBytes(buf, b []byte) []byte {
	if b == nil {
		return append(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(b))+1)
	return append(buf, b...)
}

// Times keep their instant to the nanosecond and whether they were UTC; the monotonic
// reading is dropped. Others come back in time.Local.
const (
	timeZero  = 0
	timeUTC   = 1
	timeLocal = 2
)

func appendTime(buf []byte, t time.Time) []byte {
	switch {
	case t.IsZero():
		return append(buf, timeZero)
	case t.Location() == time.UTC:
		buf = append(buf, timeUTC)
	default:
		buf = append(buf, timeLocal)
	}
	buf = binary.AppendVarint(buf, t.Unix())
	return binary.AppendUvarint(buf, uint64(t.Nanosecond()))
}

// reader decodes; after the first error every read returns zero and bad stays set.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) fail() { r.bad, r.b = true, nil }

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) string() string {
	return string(r.take(r.uvarint()))
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	return append([]byte{}, r.take(n-1)...)
}

func (r *reader) time() time.Time {
	var t time.Time
	switch r.byte() {
	case timeZero:
		return t
	case timeUTC:
		t = time.Unix(r.varint(), int64(r.uvarint())).UTC()
	case timeLocal:
		t = time.Unix(r.varint(), int64(r.uvarint()))
	default:
		r.fail()
	}
	return t
}

// timeKey is a 12-byte key that sorts as the instant does: seconds with the sign bit
// flipped, then nanoseconds, big-endian. It covers every time.Time, the zero one too.
func appendTimeKey(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(buf, uint32(t.Nanosecond()))
}

const timeKeyLen = 12

func timeFromKey(k []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(k[8:])))
}
