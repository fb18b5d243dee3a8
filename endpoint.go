package webhook

import (
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

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

// registry holds the endpoints. Every change costs about the same however many endpoints
// there are: entries are immutable and replaced one at a time under a lock, the sets the
// dispatcher reads are kept alongside, and the fan-out cache is updated in place for the
// one endpoint that changed rather than thrown away.
type registry struct {
	versionHeader  string
	httpsOnly      bool
	defaultVersion string

	mu          sync.RWMutex
	byID        map[string]*endpointEntry
	disabled    map[string]struct{}
	limited     map[string]*endpointEntry // enabled endpoints with a RateLimit
	fifo        map[string]struct{}       // Ordered endpoints
	maxInFlight map[int]int               // how many endpoints set each MaxInFlight > 0
	// routes caches Send's fan-out per event type and version, each slice in ID order
	// and never modified once published: a change replaces the slices it affects.
	routes map[routeKey][]*endpointEntry
	// changes counts the changes, so that a route computed without the write lock is
	// cached only if nothing changed meanwhile.
	changes uint64
	epochs  uint64 // the last epoch handed out (endpointEntry.epoch)
}

type routeKey struct{ eventType, version string }

// maxRoutes bounds the route cache; types beyond it are matched on every Send.
const maxRoutes = 1024

func newRegistry(versionHeader, defaultVersion string, httpsOnly bool) *registry {
	return &registry{versionHeader: versionHeader, defaultVersion: defaultVersion, httpsOnly: httpsOnly,
		byID: map[string]*endpointEntry{}, disabled: map[string]struct{}{}, limited: map[string]*endpointEntry{},
		fifo: map[string]struct{}{}, maxInFlight: map[int]int{}, routes: map[routeKey][]*endpointEntry{}}
}

// takes reports whether e receives events of k's type and version.
func (r *registry) takes(e *endpointEntry, k routeKey) bool {
	v := e.ep.Version
	if v == "" {
		v = r.defaultVersion
	}
	return !e.ep.Disabled && v == k.version && MatchEventType(e.ep.EventTypes, k.eventType)
}

// route returns the enabled endpoints that take events of eventType and version, in ID
// order. The slice is shared: do not modify it.
func (r *registry) route(eventType, version string) []*endpointEntry {
	k := routeKey{eventType, version}
	r.mu.RLock()
	out, ok := r.routes[k]
	changes := r.changes
	if !ok {
		for _, e := range r.byID {
			if r.takes(e, k) {
				out = append(out, e)
			}
		}
	}
	r.mu.RUnlock()
	if ok {
		return out
	}
	slices.SortFunc(out, byEndpointID)
	r.mu.Lock()
	if r.changes == changes && len(r.routes) < maxRoutes {
		r.routes[k] = out
	}
	r.mu.Unlock()
	return out
}

func byEndpointID(a, b *endpointEntry) int { return strings.Compare(a.ep.ID, b.ep.ID) }

func (r *registry) get(id string) (*endpointEntry, bool) {
	r.mu.RLock()
	e, ok := r.byID[id]
	r.mu.RUnlock()
	return e, ok
}

// all returns every endpoint in ID order.
func (r *registry) all() []*endpointEntry {
	r.mu.RLock()
	out := make([]*endpointEntry, 0, len(r.byID))
	for _, e := range r.byID {
		out = append(out, e)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, byEndpointID)
	return out
}

// claimView is what the dispatcher needs of the registry for one claim.
type claimView struct {
	disabled       []string
	limited        []*endpointEntry
	fifo           []string
	enabled        int // endpoints not disabled
	minMaxInFlight int // the least Endpoint.MaxInFlight set, 0 if none
}

func (r *registry) claimView() claimView {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v := claimView{enabled: len(r.byID) - len(r.disabled)}
	for id := range r.disabled {
		v.disabled = append(v.disabled, id)
	}
	for _, e := range r.limited {
		v.limited = append(v.limited, e)
	}
	for id := range r.fifo {
		v.fifo = append(v.fifo, id)
	}
	for n := range r.maxInFlight {
		if v.minMaxInFlight == 0 || n < v.minMaxInFlight {
			v.minMaxInFlight = n
		}
	}
	return v
}

// enabledCount returns how many endpoints are enabled.
func (r *registry) enabledCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byID) - len(r.disabled)
}

// sameTarget reports whether two versions of an endpoint send the same requests to the
// same place, so that what the Sender learnt of one (its health, a 410) holds for the other.
func sameTarget(a, b *endpointEntry) bool {
	return a.ep.URL == b.ep.URL && a.ep.Secret == b.ep.Secret && slices.Equal(a.ep.PreviousSecrets, b.ep.PreviousSecrets) &&
		maps.Equal(a.ep.Headers, b.ep.Headers)
}

// putLocked replaces (or adds, old nil) one endpoint and everything derived from it. A
// new epoch begins when the endpoint is new, enabled again, or pointed at a new target.
func (r *registry) putLocked(old, e *endpointEntry) {
	r.changes++
	if old == nil || (old.ep.Disabled && !e.ep.Disabled) || !sameTarget(old, e) {
		r.epochs++
		e.epoch = r.epochs
	} else {
		e.epoch = old.epoch
	}
	r.unindexLocked(old)
	r.byID[e.ep.ID] = e
	if e.ep.Disabled {
		r.disabled[e.ep.ID] = struct{}{}
	} else if e.limiter != nil {
		r.limited[e.ep.ID] = e
	}
	if e.ep.Ordered {
		r.fifo[e.ep.ID] = struct{}{}
	}
	if n := e.ep.MaxInFlight; n > 0 {
		r.maxInFlight[n]++
	}
	r.rerouteLocked(old, e)
}

// unindexLocked takes e out of the derived sets (not byID, nor the routes).
func (r *registry) unindexLocked(e *endpointEntry) {
	if e == nil {
		return
	}
	delete(r.disabled, e.ep.ID)
	delete(r.limited, e.ep.ID)
	delete(r.fifo, e.ep.ID)
	if n := e.ep.MaxInFlight; n > 0 {
		if r.maxInFlight[n]--; r.maxInFlight[n] == 0 {
			delete(r.maxInFlight, n)
		}
	}
}

// rerouteLocked updates the cached routes for one endpoint replaced by another (either
// nil for an addition or a removal).
func (r *registry) rerouteLocked(old, e *endpointEntry) {
	for k, route := range r.routes {
		was := old != nil && r.takes(old, k)
		is := e != nil && r.takes(e, k)
		if !was && !is {
			continue
		}
		next := make([]*endpointEntry, 0, len(route)+1)
		for _, x := range route {
			if x != old {
				next = append(next, x)
			}
		}
		if is {
			i, _ := slices.BinarySearchFunc(next, e, byEndpointID)
			next = slices.Insert(next, i, e)
		}
		r.routes[k] = next
	}
}

func (r *registry) add(eps []Endpoint, replace bool) error {
	compiled := make([]*endpointEntry, 0, len(eps))
	seen := make(map[string]bool, len(eps))
	for _, ep := range eps {
		e, err := compileEndpoint(ep, r.versionHeader)
		if err != nil {
			return err
		}
		if r.httpsOnly && e.url.Scheme != "https" {
			return &ValidationError{Kind: ErrInvalidEndpoint, ID: ep.ID, Field: "URL",
				Reason: "must be https:// because the Sender was built WithHTTPSOnly"}
		}
		if seen[ep.ID] {
			return fmt.Errorf("%w: %q is given twice", ErrEndpointExists, ep.ID)
		}
		seen[ep.ID] = true
		compiled = append(compiled, e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range compiled {
		_, exists := r.byID[e.ep.ID]
		if exists && !replace {
			return fmt.Errorf("%w: %q; use UpdateEndpoint to change it", ErrEndpointExists, e.ep.ID)
		}
		if !exists && replace {
			return fmt.Errorf("%w: %q; use AddEndpoint to create it", ErrEndpointNotFound, e.ep.ID)
		}
	}
	for _, e := range compiled {
		r.putLocked(r.byID[e.ep.ID], e)
	}
	return nil
}

func (r *registry) remove(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.byID[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrEndpointNotFound, id)
	}
	r.changes++
	r.unindexLocked(old)
	delete(r.byID, id)
	r.rerouteLocked(old, nil)
	return nil
}

// setDisabled flips an endpoint's Disabled flag; it reports whether it changed. With
// epoch non-zero, it disables the endpoint only if its epoch is still that one: an
// answer to an attempt made before the endpoint was enabled again, or pointed elsewhere,
// does not disable it.
func (r *registry) setDisabled(id string, disabled bool, epoch uint64) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[id]
	switch {
	case !ok:
		return false, fmt.Errorf("%w: %q", ErrEndpointNotFound, id)
	case e.ep.Disabled == disabled, epoch != 0 && e.epoch != epoch:
		return false, nil
	}
	c := *e
	c.ep.Disabled = disabled
	r.putLocked(e, &c)
	return true, nil
}
