package webhook

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/hooksmith/webhook/internal/jsonvalid"
)

// Event is one thing that happened in the caller's service, to be sent to every endpoint
// subscribed to its Type.
type Event struct {
	// ID identifies the event. It is sent on every attempt to every endpoint as the
	// webhook-id header and the envelope's "id", and is the receiver's idempotency key.
	// When empty, Send generates a unique, time-sortable ID of the form msg_<26 chars>.
	// A caller-set ID must be 1 to 128 characters of [A-Za-z0-9_.-].
	ID string
	// Type names the event as dotted words, such as "order.created". Required.
	Type string
	// Version is the payload's schema version, sent in the envelope and in the version
	// header. When empty, the Sender's version (WithVersion, default DefaultVersion) is used.
	Version string
	// Timestamp is when the event happened. When zero, Send uses the Sender's clock. It is
	// sent in UTC.
	Timestamp time.Time
	// Data is the payload. It is marshalled with encoding/json, except json.RawMessage and
	// []byte, which must already hold valid JSON and are sent as they are.
	Data any
}

// Envelope is the JSON body of every webhook request:
//
//	{"id":"msg_...","type":"order.created","timestamp":"2026-01-02T15:04:05.123Z","version":"1","data":{...}}
//
// Receivers can unmarshal a request body into it.
type Envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Version   string          `json:"version"`
	Data      json.RawMessage `json:"data"`
}

const (
	maxEventTypeLen = 255
	maxIDLen        = 128
	maxVersionLen   = 64
)

// validEventType reports whether t is dotted words of [A-Za-z0-9_-].
func validEventType(t string) bool {
	if t == "" || len(t) > maxEventTypeLen {
		return false
	}
	// Dot-separated words, none empty: no leading, trailing or double dot. (Walked
	// in place; splitting allocated on every Send.)
	if !isWord(t, true) || t[0] == '.' || t[len(t)-1] == '.' || strings.Contains(t, "..") {
		return false
	}
	return true
}

// isWord reports whether s is made only of [A-Za-z0-9_-] (and '.' when dots is set).
func isWord(s string, dots bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '.' && dots:
		default:
			return false
		}
	}
	return true
}

func validID(id string) bool { return id != "" && len(id) <= maxIDLen && isWord(id, true) }

func validVersion(v string) bool {
	if v == "" || len(v) > maxVersionLen || !utf8.ValidString(v) {
		return false
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}

// MatchEventType reports whether an endpoint filter admits eventType. A filter entry is an
// exact type ("order.created"), a prefix wildcard ("order.*" matches "order.created" and
// "order.item.added" but not "order"), or "*" for every type. An empty filter admits every
// type.
func MatchEventType(filter []string, eventType string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if f == "*" || f == eventType {
			return true
		}
		if prefix, ok := strings.CutSuffix(f, "*"); ok && strings.HasSuffix(prefix, ".") &&
			len(eventType) > len(prefix) && strings.HasPrefix(eventType, prefix) {
			return true
		}
	}
	return false
}

// validFilter reports whether f is "*", an event type, or an event type prefix followed by ".*".
func validFilter(f string) bool {
	if f == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(f, ".*"); ok {
		return validEventType(prefix)
	}
	return validEventType(f)
}

// normalize validates ev and fills its defaults. It never mutates the caller's copy.
func (ev Event) normalize(now time.Time, defaultVersion string) (Event, error) {
	invalid := func(field, reason string, cause error) error {
		return &ValidationError{Kind: ErrInvalidEvent, Field: field, Reason: reason, Err: cause}
	}
	if ev.ID == "" {
		ev.ID = NewEventID()
	} else if !validID(ev.ID) {
		return ev, invalid("ID", "must be 1 to 128 characters of [A-Za-z0-9_.-]; leave it empty to have one generated", nil)
	}
	if !validEventType(ev.Type) {
		if ev.Type == "" {
			return ev, invalid("Type", "is empty; set it to a dotted name such as \"order.created\"", nil)
		}
		return ev, invalid("Type", fmt.Sprintf("%q is not a dotted name of [A-Za-z0-9_-] words such as \"order.created\"", truncate(ev.Type, 64)), nil)
	}
	if ev.Version == "" {
		ev.Version = defaultVersion
	}
	if !validVersion(ev.Version) {
		return ev, invalid("Version", "must be 1 to 64 printable characters without quotes or backslashes", nil)
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now
	}
	ev.Timestamp = ev.Timestamp.UTC()
	// Beyond these years RFC 3339 has no form, and receivers could not parse the envelope.
	if y := ev.Timestamp.Year(); y < 0 || y > 9999 {
		return ev, invalid("Timestamp", fmt.Sprintf("year %d is outside 0 to 9999; leave it zero to use the current time", y), nil)
	}
	return ev, nil
}

// marshalData returns the JSON of ev.Data.
func marshalData(data any) ([]byte, error) {
	var raw []byte
	switch d := data.(type) {
	case json.RawMessage:
		raw = d
	case []byte:
		raw = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, &ValidationError{Kind: ErrInvalidEvent, Field: "Data",
				Reason: "cannot be marshalled to JSON: " + err.Error(), Err: err}
		}
		return b, nil
	}
	if !jsonvalid.Valid(raw) { // encoding/json's grammar, several times faster
		return nil, &ValidationError{Kind: ErrInvalidEvent, Field: "Data",
			Reason: "json.RawMessage or []byte data must hold valid JSON"}
	}
	return raw, nil
}

// appendEnvelope appends the envelope of ev (already normalized) around data. ID, Type and
// Version were validated to need no JSON escaping beyond what strconv.AppendQuote gives
// ASCII; Version may hold non-ASCII, which Go quoting would escape differently from JSON,
// so it goes through appendJSONString.
func appendEnvelope(b []byte, ev Event, data []byte) []byte {
	// envelopeID relies on the ID coming first.
	b = append(b, `{"id":"`...)
	b = append(b, ev.ID...)
	b = append(b, `","type":"`...)
	b = append(b, ev.Type...)
	b = append(b, `","timestamp":"`...)
	b = ev.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","version":`...)
	b = appendJSONString(b, ev.Version)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// NewEventID returns a new unique, time-sortable event ID: "msg_" followed by a 26
// character ULID (48 bits of milliseconds, 80 random bits, Crockford base32).
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

func newID(prefix string, now time.Time) string {
	var buf [8 + idDigits]byte
	return string(appendNewID(buf[:0], prefix, now))
}

// idDigits is the length of a generated ID after its prefix.
const idDigits = 26

// appendNewID appends a new ID with the prefix to b.
func appendNewID(b []byte, prefix string, now time.Time) []byte {
	// 128 bits: 48 bits of milliseconds, then 80 bits; 26 base32 digits hold 130.
	hi := uint64(now.UnixMilli())<<16 | idPrefix
	lo := idBase + idSeq.Add(1)
	b = append(b, prefix...)
	n := len(b)
	b = append(b, make([]byte, idDigits)...)
	for i := idDigits - 1; i >= 0; i-- {
		b[n+i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return b
}

// newDeliveryIDs returns n new delivery IDs. Each is a string of its own: a store may
// keep a delivery's ID for as long as the delivery, and IDs sharing one allocation (with
// each other or with the returned slice) would keep the whole of it alive, 16 to 18
// bytes more per pending delivery in the bench's backlog scenario.
func newDeliveryIDs(n int, now time.Time) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newDeliveryID(now)
	}
	return ids
}

// oneDeliveryID is a slice of one delivery ID together with the ID's bytes.
type oneDeliveryID struct {
	ids [1]string
	buf [len("dlv_") + idDigits]byte
}

// newOneDeliveryID returns one new delivery ID in a slice, in one allocation where
// newDeliveryIDs makes two. Only for a store that keeps a copy of the IDs it holds (the
// memory store copies them into its items); any other would keep the slice alive.
func newOneDeliveryID(now time.Time) []string {
	o := new(oneDeliveryID)
	appendNewID(o.buf[:0], "dlv_", now)
	o.ids[0] = unsafe.String(&o.buf[0], len(o.buf))
	return o.ids[:]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// formatUnix returns t's unix seconds as a decimal string.
func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// envelopeID returns id as it appears in body, an envelope from appendEnvelope: a string
// sharing body's memory instead of its own copy, so a queued delivery's event ID costs
// nothing beyond its body (32 bytes less per delivery in a backlog). It is safe because a
// Delivery's Body is never modified once built. If body does not hold id there, it
// returns id itself.
func envelopeID(body []byte, id string) string {
	const at = len(`{"id":"`)
	if id == "" || len(body) < at+len(id) || string(body[at:at+len(id)]) != id {
		return id
	}
	return unsafe.String(&body[at], len(id))
}
