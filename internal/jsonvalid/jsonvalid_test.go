package jsonvalid_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hooksmith/webhook/internal/jsonvalid"
)

// cases are inputs at the edges of the grammar; each is checked against encoding/json,
// and want pins what encoding/json says, so a change there shows up here too.
var cases = []struct {
	in   string
	want bool
}{
	{``, false}, {` `, false}, {`null`, true}, {` null `, true}, {"\t\r\n true \n", true},
	{`nul`, false}, {`nulll`, false}, {`True`, false}, {`false`, true}, {`fals`, false},
	{`0`, true}, {`-0`, true}, {`01`, false}, {`-`, false}, {`-a`, false}, {`1.`, false},
	{`1.5`, true}, {`.5`, false}, {`1e5`, true}, {`1E+5`, true}, {`1e-5`, true}, {`1e`, false},
	{`1e+`, false}, {`-12.34e+56`, true}, {`+1`, false}, {`1 2`, false}, {`0x10`, false},
	{`""`, true}, {`"a`, false}, {`"\"`, false}, {`"\\"`, true}, {`"\/\b\f\n\r\t"`, true},
	{`"\u00e9"`, true}, {`"\u00G9"`, false}, {`"\u00e"`, false}, {`"\x"`, false},
	{"\"tab\there\"", false}, {"\"\x1f\"", false}, {"\"\x7f\"", true}, {"\"\xff\xfe\"", true},
	{"\"é\"", true}, {`{}`, true}, {`{ }`, true}, {`{`, false}, {`}`, false}, {`{"a":1}`, true},
	{`{"a":1,}`, false}, {`{"a" : 1 , "b" : [ ] }`, true}, {`{"a"}`, false}, {`{"a":}`, false},
	{`{1:2}`, false}, {`{"a":1 "b":2}`, false}, {`{,}`, false}, {`[]`, true}, {`[ ]`, true},
	{`[1,2,3]`, true}, {`[1,]`, false}, {`[,1]`, false}, {`[1 2]`, false}, {`[`, false},
	{`]`, false}, {`[}`, false}, {`{]`, false}, {`[{"a":[{"b":null}]}]`, true},
	{`[{"a":[{"b":null}]]}`, false}, {`[1]]`, false}, {`{"a":1}}`, false}, {`[1] x`, false},
	{`"a" "b"`, false}, {`{"a":{"b":{}}}`, true}, {"[1,\n2]", true}, {`[true,false,null]`, true},
	{"\x00", false}, {`[1e1000]`, true}, {`{"":""}`, true},
}

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range cases {
		if std := json.Valid([]byte(c.in)); std != c.want {
			t.Errorf("json.Valid(%q) = %v; the table says %v", c.in, std, c.want)
		}
		if got := jsonvalid.Valid([]byte(c.in)); got != c.want {
			t.Errorf("Valid(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestValidNestingLimit(t *testing.T) {
	for _, tc := range []struct {
		depth int
		open  string
		close string
	}{
		{63, "[", "]"}, {64, "[", "]"}, {65, "[", "]"}, {256, `{"k":`, "}"}, {257, "[", "]"},
		{jsonvalid.MaxDepth, "[", "]"}, {jsonvalid.MaxDepth + 1, "[", "]"},
		{jsonvalid.MaxDepth, `{"k":`, "}"}, {jsonvalid.MaxDepth + 1, `{"k":`, "}"},
	} {
		in := []byte(strings.Repeat(tc.open, tc.depth) + "1" + strings.Repeat(tc.close, tc.depth))
		want := tc.depth <= jsonvalid.MaxDepth
		if std := json.Valid(in); std != want {
			t.Fatalf("depth %d: json.Valid = %v, expected %v (did encoding/json's limit change?)", tc.depth, std, want)
		}
		if got := jsonvalid.Valid(in); got != want {
			t.Errorf("depth %d of %q: Valid = %v, want %v", tc.depth, tc.open, got, want)
		}
		// Mismatched closers past the stack's first word must be caught too.
		bad := []byte(strings.Repeat(tc.open, tc.depth) + "1" + strings.Repeat(tc.close, tc.depth-1) + "]")
		if tc.open == "[" {
			bad = []byte(strings.Repeat("[", tc.depth-1) + `{"k":1` + strings.Repeat("]", tc.depth))
		}
		if got, std := jsonvalid.Valid(bad), json.Valid(bad); got != std || got {
			t.Errorf("depth %d, mismatched closer: Valid = %v, json.Valid = %v, want both false", tc.depth, got, std)
		}
	}
}

// TestValidTestdata runs the repository's JSON files (vectors, fixtures) through both.
func TestValidTestdata(t *testing.T) {
	files, err := filepath.Glob("../../testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.json found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, std := jsonvalid.Valid(b), json.Valid(b); got != std {
			t.Errorf("%s: Valid = %v, json.Valid = %v", f, got, std)
		}
		for _, cut := range []int{1, len(b) / 2, len(b) - 1} {
			if got, std := jsonvalid.Valid(b[:cut]), json.Valid(b[:cut]); got != std {
				t.Errorf("%s cut at %d: Valid = %v, json.Valid = %v", f, cut, got, std)
			}
		}
	}
}

func TestValidDoesNotAllocate(t *testing.T) {
	in := []byte(`{"id":"evt_1","type":"order.paid","data":{"amount":1250,"tags":["a","b"],"ok":true,"note":null}}`)
	if n := testing.AllocsPerRun(100, func() { jsonvalid.Valid(in) }); n != 0 {
		t.Errorf("Valid allocates %.0f times per call", n)
	}
}

func FuzzValid(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.in))
	}
	f.Add([]byte(strings.Repeat("[", 300) + strings.Repeat("]", 300)))
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, std := jsonvalid.Valid(in), json.Valid(in); got != std {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v", in, got, std)
		}
	})
}

var sink bool

func BenchmarkValid(b *testing.B) {
	payloads := map[string][]byte{
		"string-200B": []byte(`"` + strings.Repeat("x", 198) + `"`),
		"object-1KiB": []byte(`{"order":{"id":"ord_123","lines":[` + strings.Repeat(`{"sku":"A-1","qty":2,"price":12.5,"note":"gift wrap"},`, 17) +
			`{"sku":"B","qty":1,"price":3e2,"note":null}]},"paid":true}`),
	}
	for _, name := range []string{"string-200B", "object-1KiB"} {
		p := payloads[name]
		if !json.Valid(p) {
			b.Fatalf("%s is not valid JSON", name)
		}
		b.Run("jsonvalid-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				sink = jsonvalid.Valid(p)
			}
		})
		b.Run("encoding-json-"+name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				sink = json.Valid(p)
			}
		})
	}
}
