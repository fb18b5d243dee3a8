package webhook

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
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
	if !json.Valid(raw) {
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// formatUnix returns t's unix seconds as a decimal string.
func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
