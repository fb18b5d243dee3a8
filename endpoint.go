package webhook

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/time/rate"
)

// Endpoint limits.
const (
	// MaxEndpointHeaders caps Endpoint.Headers entries.
	MaxEndpointHeaders = 32
	// MaxEndpointHeaderBytes caps the total size of Endpoint.Headers names and values.
	MaxEndpointHeaderBytes = 8 << 10
	// MaxEndpointURLLength caps Endpoint.URL.
	MaxEndpointURLLength = 2048
)

// Endpoint is a receiver of webhooks: where to send, how to sign, which events.
type Endpoint struct {
	// ID names the endpoint: 1 to 128 characters of [A-Za-z0-9_.-]. Required.
	ID string
	// URL is the absolute http or https URL requests are POSTed to. Credentials and the
	// query string are kept out of logs, errors and attempt records.
	URL string
	// Secret is the current signing secret: "whsec_<base64>" (see NewSecret) or
	// "whsk_<base64>" for ed25519 (see NewKeyPair). Required.
	Secret string
	// PreviousSecrets are further secrets that stay active during a rotation: each request
	// carries one signature per secret, so receivers that know either verify it.
	PreviousSecrets []string
	// EventTypes filters the events the endpoint receives: exact types, "prefix.*"
	// wildcards or "*". Empty means every type.
	EventTypes []string
	// Version pins the payload version the endpoint receives: only events of this version
	// are sent to it. Empty means the Sender's current version (WithVersion).
	Version string
	// Headers are added to every request. They cannot replace the signature headers,
	// Content-Type, Content-Length, Host or the version header.
	Headers map[string]string
	// Disabled endpoints receive no new deliveries, and their pending deliveries wait
	// (they are not dropped) until the endpoint is enabled again.
	Disabled bool
	// Signer overrides the Sender's signer (WithSigner) for this endpoint.
	Signer Signer
	// MaxInFlight caps concurrent attempts to this endpoint, so a slow endpoint cannot
	// take every worker. Zero means the Sender's limit (WithEndpointConcurrency).
	MaxInFlight int
	// RateLimit caps attempts to this endpoint per second (a token bucket of RateBurst
	// tokens). Zero means no limit. Deliveries over the rate wait in the store; they do
	// not hold workers.
	RateLimit float64
	// RateBurst is the bucket size for RateLimit. Zero means max(1, RateLimit).
	RateBurst int
	// Ordered delivers this endpoint's events strictly in the order they were sent
	// (FIFO): a delivery is not attempted before the previous one to the endpoint
	// succeeded or failed for good. It costs throughput: one attempt at a time, and a
	// delivery waiting for a retry holds back every later one. Off by default.
	Ordered bool
}

// endpointEntry is an endpoint compiled for the hot path.
type endpointEntry struct {
	ep       Endpoint
	url      *url.URL
	redacted string // scheme://host/path, for logs and errors
	secrets  []Secret
	header   http.Header   // custom headers, canonicalised
	limiter  *rate.Limiter // nil without RateLimit
	// epoch changes when the endpoint is added, enabled again, or pointed at a new URL,
	// secret or headers: an answer to an attempt made under an earlier epoch (a 410)
	// says nothing about the endpoint as it is now.
	epoch uint64
}

var reservedHeaders = []string{
	HeaderID, HeaderTimestamp, HeaderSignature, "content-type", "content-length", "host",
	"transfer-encoding", "connection",
}

// compileEndpoint validates ep and prepares it. versionHeader is reserved too.
func compileEndpoint(ep Endpoint, versionHeader string) (*endpointEntry, error) {
	bad := func(field, reason string, cause error) error {
		return &ValidationError{Kind: ErrInvalidEndpoint, ID: ep.ID, Field: field, Reason: reason, Err: cause}
	}
	if !validID(ep.ID) {
		return nil, bad("ID", "must be 1 to 128 characters of [A-Za-z0-9_.-]", nil)
	}
	u, err := url.Parse(ep.URL)
	if err != nil || len(ep.URL) > MaxEndpointURLLength || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, bad("URL", "must be an absolute http:// or https:// URL with a host, at most 2048 bytes", nil)
	}
	if strings.ContainsAny(ep.URL, "\r\n\x00 \t") {
		return nil, bad("URL", "must not contain spaces or control characters", nil)
	}
	e := &endpointEntry{ep: ep, url: u, redacted: RedactURL(u)}
	// net/url accepts some hosts it cannot print back: a raw non-ASCII byte in an IPv6
	// zone ("[::%25\x88]") prints as "%88", which it then refuses. Logs, errors and the
	// attempt history carry the printed form, so it must parse like the original.
	if _, err := url.Parse(e.redacted); err != nil {
		return nil, bad("URL", "must parse again once printed (its host has bytes net/url cannot escape back)", nil)
	}
	e.ep.EventTypes = slices.Clone(ep.EventTypes)
	e.ep.PreviousSecrets = slices.Clone(ep.PreviousSecrets)
	for i, raw := range append([]string{ep.Secret}, ep.PreviousSecrets...) {
		s, err := ParseSecret(raw)
		if err != nil {
			field := "Secret"
			if i > 0 {
				field = fmt.Sprintf("PreviousSecrets[%d]", i-1)
			}
			return nil, bad(field, strings.TrimPrefix(err.Error(), ErrInvalidSecret.Error()+": "), ErrInvalidSecret)
		}
		e.secrets = append(e.secrets, s)
	}
	for _, f := range ep.EventTypes {
		if !validFilter(f) {
			return nil, bad("EventTypes", fmt.Sprintf("%q is not an event type, a \"prefix.*\" wildcard or \"*\"", truncate(f, 64)), nil)
		}
	}
	if ep.Version != "" && !validVersion(ep.Version) {
		return nil, bad("Version", "must be 1 to 64 printable characters without quotes or backslashes", nil)
	}
	if ep.RateLimit < 0 || ep.RateBurst < 0 || math.IsNaN(ep.RateLimit) || math.IsInf(ep.RateLimit, 0) {
		return nil, bad("RateLimit", "RateLimit and RateBurst must be finite and not negative; 0 means no limit", nil)
	}
	if ep.RateLimit > 0 {
		burst := ep.RateBurst
		if burst == 0 {
			burst = max(1, int(math.Ceil(ep.RateLimit)))
		}
		e.limiter = rate.NewLimiter(rate.Limit(ep.RateLimit), burst)
	}
	if ep.MaxInFlight < 0 {
		return nil, bad("MaxInFlight", "must not be negative; 0 means the Sender's limit", nil)
	}
	if len(ep.Headers) > MaxEndpointHeaders {
		return nil, bad("Headers", fmt.Sprintf("has %d entries, at most %d allowed", len(ep.Headers), MaxEndpointHeaders), nil)
	}
	size := 0
	e.header = make(http.Header, len(ep.Headers))
	e.ep.Headers = make(map[string]string, len(ep.Headers))
	for k, v := range ep.Headers {
		size += len(k) + len(v)
		field := "Headers[" + truncate(k, 64) + "]"
		if !validHeaderName(k) {
			return nil, bad(field, "is not a valid HTTP header name", nil)
		}
		if slices.Contains(reservedHeaders, strings.ToLower(k)) || strings.EqualFold(k, versionHeader) {
			return nil, bad(field, "is set by the sender and cannot be overridden", nil)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, bad(field, "value contains CR, LF or NUL", nil)
		}
		e.header.Set(k, v)
		e.ep.Headers[k] = v
	}
	if u.User != nil && e.header.Get("Authorization") == "" {
		// Credentials in the URL mean HTTP Basic auth, as net/http's Client would send.
		pass, _ := u.User.Password()
		e.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass)))
	}
	if size > MaxEndpointHeaderBytes {
		return nil, bad("Headers", fmt.Sprintf("total %d bytes, at most %d allowed", size, MaxEndpointHeaderBytes), nil)
	}
	return e, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// RedactURL returns u without credentials, query or fragment: safe for logs and errors.
func RedactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}
