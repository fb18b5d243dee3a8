package webhook

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

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
