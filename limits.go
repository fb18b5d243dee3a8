package webhook

import "time"

// Per-endpoint fairness is decided here, and only here: what the next claim may take,
// from the registry, the endpoints' health and the deliveries in flight. The store
// applies the result (ClaimParams); the workers run whatever they are handed.

// limitsInput is what a claim's limits are made of.
type limitsInput struct {
	now               time.Time
	workers, prefetch int
	// endpointLimit is WithEndpointConcurrency, or the default fair share (half the
	// workers); defaultShare says it is the default, which bends (see burst).
	endpointLimit int
	defaultShare  bool
	enabled       int // endpoints enabled
	disabled      []string
	ordered       []string // Ordered endpoints, for ClaimParams.Ordered
	// blocked lists the endpoints health holds back (paused, circuit open, a probe in
	// flight), reopen the earliest time one of them comes back; halfOpen those that may
	// take one probe, failing the others whose last attempt failed.
	blocked           []string
	reopen            time.Time
	halfOpen, failing []string
	limited           []limitedEndpoint
	inflight          map[string]int // claimed and not finished, by endpoint
	// own is the claim limit of in-flight endpoints that set one (Ordered: 1,
	// MaxInFlight); minOwn the least MaxInFlight any endpoint sets (0: none).
	own    map[string]int
	minOwn int
}

// limitedEndpoint is an endpoint with a rate limit: its tokens now, and when the next
// one comes.
type limitedEndpoint struct {
	id     string
	tokens float64
	next   time.Time
}

// claimLimits says what the next claim may take.
type claimLimits struct {
	// exclude lists endpoints that must not be claimed now.
	exclude []string
	// capPer is the most any one endpoint may get from the claim: the least room any
	// endpoint has, so that a single claim cannot push one past its limit.
	capPer int
	// failing lists endpoints whose last attempt failed and that may still be claimed,
	// together at most failingRoom more deliveries (failingShare of the workers), in a
	// claim after the healthy endpoints'.
	failing     []string
	failingRoom int
	// reopen is the earliest time an excluded endpoint becomes available again.
	reopen time.Time
	// atFairShare: some endpoint is excluded only because it holds its default fair
	// share, and may burst past it (limits with burst) if nothing else is due.
	atFairShare bool
}

// claimLimit is how many deliveries of one endpoint may be claimed at once, given its
// limit on attempts in flight: claimed deliveries include those buffered for the
// workers, any of which may start next, so a limit below the worker count caps claims
// at the limit itself; one at or above it cannot be exceeded, so the endpoint may also
// use the buffer.
func (in *limitsInput) claimLimit(inFlight int) int {
	if inFlight >= in.workers {
		return in.workers + in.prefetch
	}
	return inFlight
}

// burstLimit is how many deliveries an endpoint without a limit of its own may hold when
// it bursts: all while it is the only endpoint enabled, all but a reserve of the workers
// (burstReserve) otherwise, so that newly due work of other endpoints finds a worker
// however slow its attempts. Zero: no bursting.
func (in *limitsInput) burstLimit() int {
	if !in.defaultShare {
		return 0
	}
	if in.enabled <= 1 {
		return in.workers + in.prefetch
	}
	if reserve := max(1, in.workers/burstReserve); in.workers > reserve {
		return in.workers - reserve
	}
	return 0
}

// limits works out a claim's limits. With burst, endpoints without a limit of their own
// may hold up to the burst limit instead of their fair share. It is a pure function.
func limits(in limitsInput, burst bool) claimLimits {
	out := append(append(make([]string, 0, len(in.disabled)+len(in.blocked)+4), in.disabled...), in.blocked...)
	fair := in.claimLimit(in.endpointLimit)
	burstTo := in.burstLimit()
	if burstTo > 0 && (burst || in.enabled <= 1) {
		fair = burstTo // a lone endpoint bursts at once: no other's claim to yield to
	}
	capPer := fair
	if in.minOwn > 0 {
		capPer = min(capPer, in.claimLimit(in.minOwn))
	}
	atFairShare := false
	room := func(id string, limit int) bool {
		if n := in.inflight[id]; n < limit {
			capPer = min(capPer, limit-n)
			return true
		}
		out = append(out, id)
		return false
	}
	for id := range in.inflight {
		limit, own := in.own[id]
		if !own {
			limit = fair
		}
		if !room(id, limit) && !own && burstTo > fair {
			atFairShare = true
		}
	}
	for _, id := range in.halfOpen {
		room(id, 1) // one probe at a time
	}
	reopen := in.reopen
	for _, e := range in.limited {
		if e.tokens >= 1 {
			capPer = min(capPer, int(e.tokens))
			continue
		}
		out = append(out, e.id)
		if reopen.IsZero() || e.next.Before(reopen) {
			reopen = e.next
		}
	}
	l := claimLimits{capPer: max(capPer, 1), reopen: reopen, atFairShare: atFairShare}
	if len(in.failing) > 0 {
		held := 0
		for _, id := range in.failing {
			held += in.inflight[id]
		}
		if share := max(1, in.workers*failingShare/100); held < share {
			l.failing, l.failingRoom = in.failing, share-held
		} else {
			out = append(out, in.failing...)
		}
	}
	l.exclude = out
	return l
}
