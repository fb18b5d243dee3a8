package webhook

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hooksmith/webhook/store"
)

// storeErrorBackoff is how long the dispatcher waits after a store error before claiming
// again.
const storeErrorBackoff = time.Second

// dispatcher is the Sender's one claiming goroutine. It keeps the workers supplied:
// it claims due deliveries for the free places (the workers and as many again buffered
// ahead of them, so that a worker that finishes starts its next attempt at once), within
// the limits worked out for each claim, and hands them to the workers. Otherwise it
// waits, without polling, for the first of: new work (a Send, an endpoint change, a
// handed-back delivery recorded), an attempt finishing, the next due time, a store
// notification, or the slow poll for work enqueued elsewhere.
type dispatcher struct {
	store    Store
	reg      *registry
	health   *healthTable
	clock    Clock
	log      *zap.Logger
	owner    string
	lease    time.Duration
	poll     time.Duration
	workers  int
	prefetch int
	// endpointLimit and defaultShare: see limitsInput.
	endpointLimit int
	defaultShare  bool
	work          chan Delivery

	wakeC  chan struct{} // cap 1: new work may be due
	freedC chan struct{} // cap 1: attempts finished; see finished
	mu     sync.Mutex
	done   []string // endpoint IDs of attempts finished since the dispatcher last looked

	// The loop's own state.
	inflight  map[string]int // claimed and not finished, by endpoint
	total     int
	idleRuns  int // consecutive claims that found nothing though work seemed due
	timer     Timer
	timerAt   time.Time
	collected []string
}

// wake tells the dispatcher that new work may be due. It never blocks.
func (d *dispatcher) wake() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

// finished tells the dispatcher that an attempt of an endpoint is over and its place is
// free. One signal covers any number of finishes, so a busy dispatcher wakes once per
// claim round, not once per attempt.
func (d *dispatcher) finished(endpointID string) {
	d.mu.Lock()
	d.done = append(d.done, endpointID)
	d.mu.Unlock()
	select {
	case d.freedC <- struct{}{}:
	default:
	}
}

// run claims and hands out until stop is closed.
func (d *dispatcher) run(ctx context.Context, stop <-chan struct{}) {
	var notify <-chan struct{}
	if n, ok := d.store.(store.Notifier); ok {
		notify = n.Notify()
	}
	defer func() {
		if d.timer != nil {
			d.timer.Stop()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		d.collect()
		free := d.workers + d.prefetch - d.total
		if free == 0 {
			// Every worker busy and the buffer full: nothing to claim until one finishes.
			select {
			case <-stop:
			case <-d.freedC:
			}
			continue
		}
		again, next := d.claimRound(ctx, free)
		if again {
			continue
		}
		d.wait(stop, notify, next)
	}
}

// collect takes in the finished attempts.
func (d *dispatcher) collect() {
	d.mu.Lock()
	d.collected, d.done = d.done, d.collected[:0]
	d.mu.Unlock()
	for _, id := range d.collected {
		d.total--
		if d.inflight[id]--; d.inflight[id] <= 0 {
			delete(d.inflight, id)
		}
	}
}

// wait blocks until something may have made work claimable, or next (zero: only the
// poll).
func (d *dispatcher) wait(stop <-chan struct{}, notify <-chan struct{}, next time.Time) {
	pollAt := d.clock.Now().Add(d.poll)
	if next.IsZero() || next.After(pollAt) {
		next = pollAt
	}
	// The timer is kept while later waits want it no earlier (most often the poll, which
	// moves a little later every round); firing early only means a round that finds
	// nothing.
	if d.timer == nil || next.Before(d.timerAt) {
		if d.timer != nil {
			d.timer.Stop()
		}
		d.timer, d.timerAt = d.clock.NewTimerAt(next), next
	}
	select {
	case <-stop:
	case <-d.wakeC:
	case <-d.freedC:
	case <-d.timer.C():
		d.timer = nil
	case <-notify:
	}
}

// claimRound claims for up to free places and hands the deliveries out. again says to
// claim once more at once (every place was filled, so more may be due); otherwise next
// is when work is next due, zero when only an event can bring any.
func (d *dispatcher) claimRound(ctx context.Context, free int) (again bool, next time.Time) {
	now := d.clock.Now()
	in := d.limitsInput(now)
	l := limits(in, false)
	lease := now.Add(d.lease)
	claim := func(exclude []string, limit, capPer int) int {
		ds, err := d.store.Claim(ctx, store.ClaimParams{Now: now, Limit: limit, Owner: d.owner, LeaseUntil: lease,
			ExcludeEndpoints: exclude, MaxPerEndpoint: capPer, Ordered: in.ordered})
		if err != nil {
			d.log.Error("webhook: claiming deliveries failed; retrying", zap.Error(err))
			next = now.Add(storeErrorBackoff)
			return -1
		}
		for _, dl := range ds {
			d.total++
			d.inflight[dl.EndpointID]++
			if len(in.limited) > 0 {
				if e, ok := d.reg.get(dl.EndpointID); ok && e.limiter != nil {
					e.limiter.AllowN(now, 1) // spend the token the limits counted
				}
			}
			d.work <- dl
		}
		return len(ds)
	}
	// Healthy endpoints first; then the failing ones, within their share; then, if
	// nothing else could use the rest, the endpoints at their fair share may burst.
	got := claim(append(l.exclude[:len(l.exclude):len(l.exclude)], l.failing...), free, l.capPer)
	if got >= 0 && got < free && l.failingRoom > 0 {
		if n := claim(l.exclude, min(free-got, l.failingRoom), l.capPer); n >= 0 {
			got += n
		} else {
			got = -1
		}
	}
	if got >= 0 && got < free && l.atFairShare {
		in.inflight = d.inflight
		b := limits(in, true)
		if n := claim(append(b.exclude, b.failing...), free-got, b.capPer); n >= 0 {
			got += n
		} else {
			got = -1
		}
	}
	switch {
	case got < 0:
		return false, next
	case got == free:
		return true, time.Time{}
	case got > 0:
		// The attempts just handed out will say when they finish; ask the store when
		// work is next due only once a claim finds nothing, sparing a remote store a
		// round trip per claim.
		d.idleRuns = 0
		return false, l.reopen
	}
	due, err := d.store.NextDue(ctx, l.exclude)
	switch {
	case err != nil:
		d.log.Error("webhook: reading the next due time failed; retrying", zap.Error(err))
		return false, now.Add(storeErrorBackoff)
	case due.IsZero():
		return false, l.reopen
	case !l.reopen.IsZero() && l.reopen.Before(due):
		return false, l.reopen // an excluded endpoint comes back first
	case !due.After(now):
		// The store says work is due but gave none (all of it held back by limits):
		// back off a little rather than spin, growing to the poll interval.
		d.idleRuns++
		return false, now.Add(min(time.Duration(d.idleRuns)*10*time.Millisecond, d.poll))
	}
	d.idleRuns = 0
	return false, due
}

// limitsInput gathers what the next claim's limits are made of.
func (d *dispatcher) limitsInput(now time.Time) limitsInput {
	v := d.reg.claimView()
	in := limitsInput{now: now, workers: d.workers, prefetch: d.prefetch, endpointLimit: d.endpointLimit,
		defaultShare: d.defaultShare, enabled: v.enabled, disabled: v.disabled, ordered: v.fifo,
		inflight: d.inflight, minOwn: v.minMaxInFlight}
	in.blocked, in.reopen = d.health.blocked(now, nil,
		func(id string) { in.halfOpen = append(in.halfOpen, id) },
		func(id string) { in.failing = append(in.failing, id) })
	for _, e := range v.limited {
		tokens := e.limiter.TokensAt(now)
		in.limited = append(in.limited, limitedEndpoint{id: e.ep.ID, tokens: tokens,
			next: now.Add(time.Duration((1 - tokens) / float64(e.limiter.Limit()) * float64(time.Second)))})
	}
	for id := range d.inflight {
		if e, ok := d.reg.get(id); ok && e.ep.Ordered {
			in.setOwn(id, 1)
		} else if ok && e.ep.MaxInFlight > 0 {
			in.setOwn(id, in.claimLimit(e.ep.MaxInFlight))
		}
	}
	return in
}

func (in *limitsInput) setOwn(id string, n int) {
	if in.own == nil {
		in.own = map[string]int{}
	}
	in.own[id] = n
}
