package webhook

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseRetryAfter: any header value parses without panicking, and a parsed delay is
// never negative.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "-1", "", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "99999999999999999999", "1e3", " 5 "} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if d < 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s, negative", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s with ok=false", v, d)
		}
	})
}

// FuzzEndpointValidation: any endpoint URL and header either compiles into an entry whose
// request can be built, or is rejected with a typed error; never a panic, and never an
// error that repeats the URL's credentials or query.
func FuzzEndpointValidation(f *testing.F) {
	for _, s := range [][3]string{
		{"https://example.com/hook", "X-Tenant", "t1"},
		{"http://user:pw@h.test:8080/p?q=secret#frag", "Authorization", "Bearer x"},
		{"ftp://h/", "", ""}, {"https://", "X", "a\r\nb"}, {"/relative", "Webhook-Id", "x"},
		{"https://[::1]:443/x", "X-A", "\x00"}, {"https://h.test/%zz", "Bad Name", "v"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	secret := NewSecret()
	f.Fuzz(func(t *testing.T, rawURL, name, value string) {
		ep := Endpoint{ID: "ep", URL: rawURL, Secret: secret}
		if name != "" {
			ep.Headers = map[string]string{name: value}
		}
		e, err := compileEndpoint(ep, DefaultVersionHeader)
		if err != nil {
			if !errors.Is(err, ErrInvalidEndpoint) {
				t.Fatalf("untyped error %v", err)
			}
			if u, perr := url.Parse(rawURL); perr == nil {
				if p, ok := u.User.Password(); ok && len(p) > 3 && strings.Contains(err.Error(), p) {
					// The message's own words may hold p ("ttps" is in "https://"): a leak
					// is p more often than in the error for the same URL with another
					// password, of a letter p does not have.
					other := *u
					other.User = url.UserPassword(u.User.Username(), strings.Repeat(markerLetter(p), 8))
					_, oerr := compileEndpoint(Endpoint{ID: "ep", URL: other.String(), Secret: secret, Headers: ep.Headers}, DefaultVersionHeader)
					if oerr == nil || strings.Count(err.Error(), p) > strings.Count(oerr.Error(), p) {
						t.Fatalf("error leaks the password: %v", err)
					}
				}
			}
			return
		}
		req, err := http.NewRequest(http.MethodPost, e.ep.URL, nil)
		if err != nil {
			t.Fatalf("accepted URL %q cannot make a request: %v", rawURL, err)
		}
		if e.url.Scheme != "http" && e.url.Scheme != "https" {
			t.Fatalf("accepted scheme %q", e.url.Scheme)
		}
		for k, vs := range e.header {
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") || !validHeaderName(k) {
					t.Fatalf("accepted header %q: %q", k, v)
				}
			}
		}
		// Parsed, not searched for '@' and '?': a path may hold an '@' ("http://@0/@").
		r, err := url.Parse(e.redacted)
		if err != nil {
			t.Fatalf("accepted URL %q prints as %q, which does not parse: %v", rawURL, e.redacted, err)
		}
		if r.User != nil || r.RawQuery != "" || r.ForceQuery {
			t.Fatalf("redacted URL %q keeps credentials or query", e.redacted)
		}
		_ = req
	})
}

// FuzzHexSignerHeader: any header name and prefix either sign or fail cleanly.
func FuzzHexSignerHeader(f *testing.F) {
	f.Add("X-Hub-Signature-256", "sha256=", []byte(`{"a":1}`))
	f.Add("", "", []byte{})
	sec, err := ParseSecret(NewSecret())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, prefix string, body []byte) {
		h := http.Header{}
		if err := (HexSigner{Header: header, Prefix: prefix}).Sign(h, Message{ID: "msg_1", Timestamp: time.Unix(1, 0), Body: body}, []Secret{sec}); err != nil {
			t.Fatalf("HexSigner failed: %v", err)
		}
	})
}

// markerLetter returns a letter that p does not contain, for a stand-in password that
// cannot make p appear.
func markerLetter(p string) string {
	for _, c := range "xyzqjkXYZQJK" {
		if !strings.ContainsRune(p, c) {
			return string(c)
		}
	}
	return "w" // p holds all twelve; "w" is then as good as any
}
