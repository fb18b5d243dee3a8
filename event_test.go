package webhook

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidEventType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ  string
		want bool
	}{
		{"order.created", true},
		{"a", true},
		{"user_signup.v2-x", true},
		{"A.B.C.D", true},
		{"0.1", true},
		{strings.Repeat("a", maxEventTypeLen), true},
		{"", false},
		{".a", false},
		{"a.", false},
		{"a..b", false},
		{".", false},
		{"a b", false},
		{"a\tb", false},
		{"ä.b", false},
		{"a/b", false},
		{"a*", false},
		{"order.*", false},
		{"a\x00", false},
		{strings.Repeat("a", maxEventTypeLen+1), false},
	}
	for _, tt := range tests {
		t.Run(truncate(tt.typ, 20), func(t *testing.T) {
			assert.Equal(t, tt.want, validEventType(tt.typ), "%q", tt.typ)
		})
	}
}

func TestMatchEventType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		filter []string
		typ    string
		want   bool
	}{
		{"exact", []string{"user.created"}, "user.created", true},
		{"exact, other type", []string{"user.created"}, "user.deleted", false},
		{"exact is not a prefix", []string{"user"}, "user.created", false},
		{"wildcard, one level", []string{"user.*"}, "user.created", true},
		{"wildcard, deeper", []string{"user.*"}, "user.profile.updated", true},
		{"wildcard needs a dot after the prefix", []string{"user.*"}, "users.created", false},
		{"wildcard does not match the bare prefix", []string{"user.*"}, "user", false},
		{"wildcard, nested prefix", []string{"user.profile.*"}, "user.profile.updated", true},
		{"wildcard, nested prefix, sibling", []string{"user.profile.*"}, "user.settings.updated", false},
		{"star", []string{"*"}, "anything.at.all", true},
		{"empty filter", nil, "user.created", true},
		{"empty non-nil filter", []string{}, "user.created", true},
		{"several entries, last matches", []string{"order.*", "invoice.paid", "user.*"}, "user.created", true},
		{"several entries, none matches", []string{"order.*", "invoice.paid"}, "user.created", false},
		{"bare star suffix is not a wildcard", []string{"user*"}, "user.created", false},
		{"case sensitive", []string{"User.*"}, "user.created", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, MatchEventType(tt.filter, tt.typ))
		})
	}
}

func TestValidFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter string
		want   bool
	}{
		{"*", true},
		{"user.created", true},
		{"user", true},
		{"user.*", true},
		{"user.profile.*", true},
		{"", false},
		{".*", false},
		{"*.*", false},
		{"user*", false},
		{"user.", false},
		{"*.created", false},
		{"user.**", false},
		{"user.*.created", false},
		{"us er.*", false},
		{"**", false},
		{"ü.*", false},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			assert.Equal(t, tt.want, validFilter(tt.filter), "%q", tt.filter)
		})
	}
}

var eventIDPattern = regexp.MustCompile(`^msg_[0-7][0-9A-HJKMNP-TV-Z]{25}$`)

// idMillis decodes the millisecond timestamp in the first 10 characters of an ID's ULID.
func idMillis(t *testing.T, ulid string) int64 {
	t.Helper()
	var ms int64
	for _, c := range ulid[:10] {
		i := strings.IndexRune(crockford, c)
		require.GreaterOrEqual(t, i, 0, "%q is not Crockford base32", c)
		ms = ms<<5 | int64(i)
	}
	return ms // 10 characters hold 50 bits, the top 2 always zero: the 48 bits of time
}

func TestNewEventID(t *testing.T) {
	t.Parallel()
	before := time.Now().UnixMilli()
	const n = 100_000
	seen := make(map[string]struct{}, n)
	for range n {
		id := NewEventID()
		require.Regexp(t, eventIDPattern, id)
		_, dup := seen[id]
		require.False(t, dup, "duplicate ID %s", id)
		seen[id] = struct{}{}
	}
	after := time.Now().UnixMilli()

	id := NewEventID()
	assert.True(t, validID(id), "a generated ID passes the caller-ID rules")
	ms := idMillis(t, strings.TrimPrefix(id, "msg_"))
	assert.GreaterOrEqual(t, ms, before)
	assert.LessOrEqual(t, ms, time.Now().UnixMilli())
	assert.GreaterOrEqual(t, idMillis(t, strings.TrimPrefix(id, "msg_")), after)

	dlv := newDeliveryID(time.Now())
	assert.Regexp(t, `^dlv_[0-7][0-9A-HJKMNP-TV-Z]{25}$`, dlv)
}

func TestNewIDSortable(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	var times []time.Time
	for i := range 2000 {
		times = append(times, base.Add(time.Duration(i)*time.Millisecond))
	}
	// Far-apart times too, up to the largest 48-bit millisecond count (year 10889).
	times = append(times, base.AddDate(1, 0, 0), base.AddDate(100, 0, 0), time.UnixMilli(1<<48-1))
	times = append([]time.Time{time.UnixMilli(0), time.UnixMilli(1), time.Unix(1_000_000_000, 0)}, times...)

	ids := make([]string, len(times))
	for i, ts := range times {
		ids[i] = newID("msg_", ts)
		assert.Equal(t, ts.UnixMilli(), idMillis(t, ids[i][4:]), "ID %s for %v", ids[i], ts)
	}
	for i := 1; i < len(ids); i++ {
		assert.Less(t, ids[i-1], ids[i], "IDs at %v and %v", times[i-1], times[i])
	}
	assert.True(t, slices.IsSorted(ids))
}

func TestAppendEnvelope(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 15, 4, 5, 123_456_789, time.FixedZone("UTC+5", 5*3600))
	tests := []struct {
		name    string
		version string
		data    string
		ts      time.Time
	}{
		{name: "plain", version: "1", data: `{"order":{"id":42,"total":"9.99"}}`, ts: ts},
		{name: "date version", version: "2026-01-01", data: `[1,2,3]`, ts: ts},
		{name: "non-ASCII version", version: "v2 – bêta ü 日本 😀", data: `"text"`, ts: ts},
		{name: "HTML-ish version", version: "<v1> & 'beta'", data: `null`, ts: ts},
		{name: "whole seconds", version: "1", data: `{"s":"é\u2028"}`, ts: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)},
		{name: "whitespace in data", version: "1", data: " {\n \"a\" : [ 1 , 2 ] }\n", ts: ts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Event{Type: "order.created", Version: tt.version, Timestamp: tt.ts}.normalize(time.Now(), "1")
			require.NoError(t, err)
			data, err := marshalData(json.RawMessage(tt.data))
			require.NoError(t, err)

			prefix := []byte("keep")
			out := appendEnvelope(slices.Clone(prefix), ev, data)
			require.True(t, strings.HasPrefix(string(out), "keep"), "appends to b")
			body := out[len(prefix):]
			require.True(t, json.Valid(body), "not valid JSON: %s", body)

			var env Envelope
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&env))
			assert.Equal(t, ev.ID, env.ID)
			assert.Equal(t, "order.created", env.Type)
			assert.Equal(t, tt.version, env.Version)
			assert.True(t, tt.ts.Equal(env.Timestamp), "timestamp %v, want %v", env.Timestamp, tt.ts)
			assert.JSONEq(t, tt.data, string(env.Data))

			var fields map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(body, &fields))
			assert.Len(t, fields, 5)
			var rawTS string
			require.NoError(t, json.Unmarshal(fields["timestamp"], &rawTS))
			assert.Equal(t, tt.ts.UTC().Format(time.RFC3339Nano), rawTS, "UTC RFC 3339 with nanoseconds")
			assert.True(t, strings.HasSuffix(rawTS, "Z"))
		})
	}
}

func TestEventNormalize(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", -7*3600))
	tests := []struct {
		name      string
		ev        Event
		wantField string // empty: valid
	}{
		{name: "minimal", ev: Event{Type: "order.created"}},
		{name: "caller ID", ev: Event{ID: "evt_1.A-b", Type: "a"}},
		{name: "bad ID", ev: Event{ID: "evt 1", Type: "a"}, wantField: "ID"},
		{name: "long ID", ev: Event{ID: strings.Repeat("a", maxIDLen+1), Type: "a"}, wantField: "ID"},
		{name: "no type", ev: Event{}, wantField: "Type"},
		{name: "bad type", ev: Event{Type: "order created"}, wantField: "Type"},
		{name: "version with quote", ev: Event{Type: "a", Version: `v"1`}, wantField: "Version"},
		{name: "version with backslash", ev: Event{Type: "a", Version: `v\1`}, wantField: "Version"},
		{name: "version with newline", ev: Event{Type: "a", Version: "v\n1"}, wantField: "Version"},
		{name: "version not UTF-8", ev: Event{Type: "a", Version: "v\xff"}, wantField: "Version"},
		{name: "long version", ev: Event{Type: "a", Version: strings.Repeat("v", maxVersionLen+1)}, wantField: "Version"},
		{name: "year 9999", ev: Event{Type: "a", Timestamp: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}},
		{name: "year 10000", ev: Event{Type: "a", Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, wantField: "Timestamp"},
		{name: "negative year", ev: Event{Type: "a", Timestamp: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}, wantField: "Timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.ev
			got, err := tt.ev.normalize(now, "2")
			assert.Equal(t, orig, tt.ev, "the caller's Event is not modified")
			if tt.wantField != "" {
				assert.ErrorIs(t, err, ErrInvalidEvent)
				var verr *ValidationError
				require.ErrorAs(t, err, &verr)
				assert.Equal(t, tt.wantField, verr.Field)
				return
			}
			require.NoError(t, err)
			if tt.ev.ID == "" {
				assert.Regexp(t, eventIDPattern, got.ID)
			} else {
				assert.Equal(t, tt.ev.ID, got.ID)
			}
			if tt.ev.Version == "" {
				assert.Equal(t, "2", got.Version)
			}
			if tt.ev.Timestamp.IsZero() {
				assert.True(t, now.Equal(got.Timestamp))
			}
			assert.Equal(t, time.UTC, got.Timestamp.Location())
		})
	}
}

type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) { return nil, errors.New("no JSON today") }

func TestMarshalData(t *testing.T) {
	t.Parallel()
	type order struct {
		ID    int    `json:"id"`
		Note  string `json:"note,omitempty"`
		Items []int  `json:"items"`
	}
	tests := []struct {
		name    string
		data    any
		want    string // exact bytes, when ok
		wantErr bool
	}{
		{name: "raw message", data: json.RawMessage(`{"a": 1}`), want: `{"a": 1}`},
		{name: "bytes", data: []byte(`[1, 2]`), want: `[1, 2]`},
		{name: "raw scalar", data: json.RawMessage(`42`), want: `42`},
		{name: "struct", data: order{ID: 7, Items: []int{1}}, want: `{"id":7,"items":[1]}`},
		{name: "pointer to struct", data: &order{ID: 8, Note: "<b>"}, want: `{"id":8,"note":"\u003cb\u003e","items":null}`},
		{name: "map", data: map[string]int{"b": 2, "a": 1}, want: `{"a":1,"b":2}`},
		{name: "nil", data: nil, want: `null`},
		{name: "string", data: "hi", want: `"hi"`},
		{name: "invalid raw message", data: json.RawMessage(`{"a":`), wantErr: true},
		{name: "invalid bytes", data: []byte(`not json`), wantErr: true},
		{name: "empty raw message", data: json.RawMessage(nil), wantErr: true},
		{name: "empty bytes", data: []byte{}, wantErr: true},
		{name: "two values", data: []byte(`{} {}`), wantErr: true},
		{name: "channel", data: make(chan int), wantErr: true},
		{name: "func", data: func() {}, wantErr: true},
		{name: "NaN", data: math.NaN(), wantErr: true},
		{name: "struct with channel", data: struct{ C chan int }{}, wantErr: true},
		{name: "failing marshaler", data: failingMarshaler{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := marshalData(tt.data)
			if !tt.wantErr {
				require.NoError(t, err)
				assert.Equal(t, tt.want, string(got))
				return
			}
			assert.Nil(t, got)
			assert.ErrorIs(t, err, ErrInvalidEvent)
			var verr *ValidationError
			require.ErrorAs(t, err, &verr)
			assert.Equal(t, "Data", verr.Field)
			assert.Equal(t, ErrInvalidEvent, verr.Kind)
			assert.NotEmpty(t, verr.Reason)
		})
	}
}

// FuzzMatchEventType checks MatchEventType against the documented rules, stated here
// independently.
func FuzzMatchEventType(f *testing.F) {
	for _, seed := range [][2]string{
		{"user.*", "user.created"},
		{"user.*", "user"},
		{"user.*", "users.created"},
		{"*", "a"},
		{"order.created", "order.created"},
		{"a.*", "a."},
		{".*", ".x"},
		{"", ""},
		{"user*", "user.x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, filter, typ string) {
		got := MatchEventType([]string{filter}, typ)
		prefix, isWildcard := strings.CutSuffix(filter, ".*")
		want := filter == "*" || filter == typ ||
			isWildcard && strings.HasPrefix(typ, prefix+".") && len(typ) > len(prefix)+1
		assert.Equal(t, want, got, "filter %q, type %q", filter, typ)

		assert.True(t, MatchEventType(nil, typ), "an empty filter admits everything")
		assert.True(t, MatchEventType([]string{"*"}, typ))
		assert.True(t, MatchEventType([]string{typ}, typ))
		if other := "\x00other"; typ != other {
			assert.Equal(t, got, MatchEventType([]string{other, filter}, typ), "a non-matching extra entry changes nothing")
		}
		if validEventType(typ) {
			if i := strings.LastIndexByte(typ, '.'); i > 0 {
				assert.True(t, MatchEventType([]string{typ[:i] + ".*"}, typ), "a type matches its parent's wildcard")
			}
		}
	})
}

func TestNewIDMonotonicWithinAMillisecond(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := newID("dlv_", now)
	for range 10000 {
		id := newID("dlv_", now)
		require.Less(t, prev, id, "IDs made one after another in the same millisecond increase")
		prev = id
	}
}

// newDeliveryIDs' IDs are whole, distinct and increasing, and later ones do not change
// them.
func TestNewDeliveryIDs(t *testing.T) {
	t.Parallel()
	now := time.Now()
	pattern := regexp.MustCompile(`^dlv_[0-7][0-9A-HJKMNP-TV-Z]{25}$`)
	var all []string
	for _, n := range []int{1, 3, 1, 5} {
		ids := newDeliveryIDs(n, now)
		require.Len(t, ids, n)
		all = append(all, ids...)
	}
	kept := make([]string, len(all)) // copies of the bytes, not of the string headers
	for i, id := range all {
		kept[i] = strings.Clone(id)
	}
	for range 100 {
		newDeliveryIDs(3, now)
	}
	for i, id := range all {
		assert.Regexp(t, pattern, id)
		assert.Equal(t, now.UnixMilli(), idMillis(t, strings.TrimPrefix(id, "dlv_")), "time of %s", id)
		assert.Equal(t, kept[i], id, "unchanged after more IDs")
		if i > 0 {
			assert.Greater(t, id, all[i-1], "increasing")
		}
	}
}
